/**
 * End to end through the real CLI: key generate → sign → build → verify (with
 * a full rebuild from a fresh cache), and every rejection with its exit code
 * and no stack trace.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Gpg, TempDir } from '../helpers/pgp.js';
import { makeDeb } from '../helpers/make-deb.js';
import { bodyOffset, flipByte, forgeImage } from '../helpers/oci-fixture.js';
import { cli, expectCleanFailure } from '../helpers/sign-cli.js';
import { checkImageIntegrity } from '../../src/verify/integrity.js';
import { loadManifest } from '../../src/manifest/load.js';
import { resolveLock } from '../../src/lock/resolve.js';
import { writeLockIntoManifest } from '../../src/lock/write.js';

/** Pin the manifest's packages and files (mkimg lock), in process: local .debs only, no network. */
async function lock(path: string): Promise<void> {
  const l = await resolveLock(loadManifest(path));
  writeFileSync(path, writeLockIntoManifest(readFileSync(path, 'utf8'), l));
}

let dir: TempDir;
let gpg: Gpg;
let proj: string;
let manifest: string;
let sig: string;
let pub: string;
let image: string;
let fingerprint: string;
let env: NodeJS.ProcessEnv;

function manifestText(deb: { path: string; sha256: string }, tag: string) {
  return `apiVersion: mkimg/v1
name: test/verify
tag: "${tag}"
sourceDateEpoch: 1700000000
packages:
  - deb: vendor/${deb.path.split('/').pop()}
    sha256: "${deb.sha256}"
files:
  - src: app/
    dest: /app
config:
  entrypoint: ["/app/run.sh"]
  env: {LANG: C.UTF-8}
minimize: false
`;
}

beforeAll(async () => {
  dir = new TempDir('mkimg-verify-cli-');
  gpg = new Gpg(dir);
  env = { ...process.env, XDG_CACHE_HOME: join(dir.path, 'cache') };
  proj = join(dir.path, 'proj');
  mkdirSync(join(proj, 'vendor'), { recursive: true });
  mkdirSync(join(proj, 'app'), { recursive: true });
  writeFileSync(join(proj, 'app', 'run.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
  const deb = makeDeb(join(proj, 'vendor'), {
    name: 'verify-busybox',
    files: { '/usr/bin/busybox': { copyFrom: '/bin/busybox', mode: 0o755 }, '/usr/bin/sh': { symlink: 'busybox' } },
  });
  manifest = join(proj, 'manifest.yaml');
  writeFileSync(manifest, manifestText(deb, '1.0'));
  writeFileSync(join(proj, 'other.yaml'), manifestText(deb, '2.0'));
  await lock(manifest);
  await lock(join(proj, 'other.yaml'));

  const k = cli([
    'key',
    'generate',
    '--name',
    'Release',
    '--email',
    'release@example.org',
    '-o',
    join(dir.path, 'rel'),
    '--json',
  ]);
  expect(k.code, k.stderr).toBe(0);
  const key = JSON.parse(k.stdout);
  fingerprint = key.fingerprint;
  pub = key.publicPath;
  const s = cli(['sign', manifest, '--key', key.secretPath, '--json']);
  expect(s.code, s.stderr).toBe(0);
  sig = JSON.parse(s.stdout).output;
  expect(sig).toBe(manifest + '.sig');
  expect(cli(['sign', join(proj, 'other.yaml'), '--key', key.secretPath]).code).toBe(0);

  image = join(dir.path, 'image.tar');
  const b = cli(['build', manifest, '-o', image, '--json'], { env });
  expect(b.code, b.stderr).toBe(0);
  const b2 = cli(['build', join(proj, 'other.yaml'), '-o', join(dir.path, 'other.tar'), '--json'], { env });
  expect(b2.code, b2.stderr).toBe(0);
}, 300_000);

afterAll(() => {
  gpg?.cleanup();
  dir?.cleanup();
});

describe('mkimg verify: success', () => {
  it('full verify with a fresh cache: signature, integrity, binding, byte-identical rebuild', () => {
    const r = cli(['verify', image, sig, '--keyring', pub, '--cache-dir', join(dir.path, 'fresh-cache'), '--json'], {
      env,
    });
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({
      verified: true,
      signer: fingerprint,
      manifest,
      steps: { signature: 'ok', integrity: 'ok', binding: 'ok', rebuild: 'ok' },
    });
    expect(j.manifestSha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('--no-rebuild, human output names the signer; the manifest defaults to the signature name without .sig', () => {
    const r = cli(['verify', image, sig, '--keyring', pub, '--no-rebuild']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`signature: good, by ${fingerprint}`);
    expect(r.stdout).toContain('rebuild:   skipped');
  });

  it('a signature made by gpg --detach-sign --armor', () => {
    const f = gpg.genKey('Gpg <gpg@example.org>', 'ed25519');
    const gsig = join(dir.path, 'gpg-manifest.sig');
    gpg.ok(['--local-user', f, '--detach-sign', '--armor', '--output', gsig, manifest]);
    const ring = gpg.exportPublic(f, join(dir.path, 'gpg.pub.asc'));
    const r = cli(['verify', image, gsig, '--manifest', manifest, '--keyring', ring, '--no-rebuild', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).signer).toBe(f);
  });
});

describe('mkimg verify: rejections, each with its exit code and no stack trace', () => {
  it('6: one flipped byte in the manifest (checked before the image)', () => {
    const m = join(dir.path, 'flipped.yaml');
    const b = readFileSync(manifest);
    b[30] ^= 0x01;
    writeFileSync(m, b);
    // the image is corrupt too: the signature is still reported first
    const bad = join(dir.path, 'bad-and-unsigned.tar');
    copyFileSync(image, bad);
    truncateSync(bad, 4000);
    expectCleanFailure(cli(['verify', bad, sig, '--manifest', m, '--keyring', pub]), 6, /BAD signature/, expect);
  });

  it('6: a key not in the keyring', () => {
    const f = gpg.genKey('Stranger <stranger@example.org>', 'ed25519');
    const ring = gpg.exportPublic(f, join(dir.path, 'stranger.pub.asc'));
    expectCleanFailure(
      cli(['verify', image, sig, '--keyring', ring, '--no-rebuild']),
      6,
      new RegExp(`key ${fingerprint}, which is not in the keyring`),
      expect,
    );
  });

  it('6: clearsigned, with --json giving the error object', () => {
    const f = gpg.genKey('Clear <clear@example.org>', 'ed25519');
    const cs = join(dir.path, 'clear.asc');
    gpg.ok(['--local-user', f, '--clearsign', '--output', cs, manifest]);
    const r = cli([
      'verify',
      image,
      cs,
      '--manifest',
      manifest,
      '--keyring',
      gpg.exportPublic(f, join(dir.path, 'clear.pub.asc')),
      '--json',
    ]);
    expect(r.code).toBe(6);
    expect(JSON.parse(r.stdout).error).toMatchObject({ kind: 'signature', exitCode: 6 });
    expect(r.stderr).toMatch(/clearsigned/);
  });

  const tamper = async (name: string, what: 'layer' | 'config' | 'index') => {
    const c = await checkImageIntegrity(image);
    const bytes = readFileSync(image);
    const entry =
      what === 'layer'
        ? `blobs/sha256/${c.layers[0].digest.slice(7)}`
        : what === 'config'
          ? `blobs/sha256/${c.configDigest.slice(7)}`
          : 'index.json';
    const out = join(dir.path, name);
    await flipByte(image, out, bodyOffset(bytes, entry) + (what === 'layer' ? 2000 : 20));
    return out;
  };

  it('7: one flipped byte in a layer, in the config, in index.json', async () => {
    expectCleanFailure(
      cli(['verify', await tamper('t-layer.tar', 'layer'), sig, '--keyring', pub]),
      7,
      /is corrupted: its content hashes to/,
      expect,
    );
    expectCleanFailure(
      cli(['verify', await tamper('t-config.tar', 'config'), sig, '--keyring', pub]),
      7,
      /is corrupted/,
      expect,
    );
    expectCleanFailure(
      cli(['verify', await tamper('t-index.tar', 'index'), sig, '--keyring', pub]),
      7,
      /index\.json/,
      expect,
    );
  });

  it('7: a truncated tar', () => {
    const t = join(dir.path, 'trunc.tar');
    copyFileSync(image, t);
    truncateSync(t, Math.floor(readFileSync(image).length / 2));
    expectCleanFailure(cli(['verify', t, sig, '--keyring', pub]), 7, /truncated/, expect);
  });

  it('8: an image built from another (also signed) manifest', () => {
    expectCleanFailure(
      cli(['verify', join(dir.path, 'other.tar'), sig, '--keyring', pub]),
      8,
      /was built from a different manifest/,
      expect,
    );
  });

  it('9: a whole, bound image whose bytes are not what the manifest builds — and where they differ', async () => {
    const forged = join(dir.path, 'forged.tar');
    await forgeImage(image, forged, { config: (c) => c.config.Env.push('EVIL=1') });
    const r = cli(['verify', forged, sig, '--keyring', pub], { env });
    expectCleanFailure(r, 9, /rebuilding .* gave different bytes/, expect);
    expect(r.stderr).toMatch(
      /config: config\.config\.Env\[\d\]: absent ≠ "EVIL=1"|config: config\.config\.Env\[\d\]: "EVIL=1" ≠ absent/,
    );
  });

  it('2: a missing manifest, signature file or keyring', () => {
    expectCleanFailure(
      cli(['verify', image, sig, '--manifest', join(dir.path, 'nope.yaml'), '--keyring', pub]),
      2,
      /cannot read manifest .*nope\.yaml: no such file/,
      expect,
    );
    expectCleanFailure(
      cli(['verify', image, join(dir.path, 'nope.sig'), '--manifest', manifest, '--keyring', pub]),
      2,
      /cannot read signature/,
      expect,
    );
    expectCleanFailure(
      cli(['verify', image, sig, '--keyring', join(dir.path, 'nope.asc')]),
      2,
      /cannot read keyring/,
      expect,
    );
  });
});

describe('mkimg diff and build --require-signature', () => {
  it('diff: exit 0 identical, 9 different with JSON paths', async () => {
    const same = cli(['diff', image, image]);
    expect(same.code).toBe(0);
    expect(same.stdout).toMatch(/^identical/);
    const forged = join(dir.path, 'forged2.tar');
    await forgeImage(image, forged, { config: (c) => (c.config.WorkingDir = '/tmp') });
    const d = cli(['diff', image, forged, '--json']);
    expect(d.code).toBe(9);
    const j = JSON.parse(d.stdout);
    expect(j.identical).toBe(false);
    expect(j.differences.find((x: { field?: string }) => x.field === 'config.config.WorkingDir')).toMatchObject({
      b: '/tmp',
    });
  });

  it('build refuses an unsigned or badly signed manifest (flag and environment), before fetching', () => {
    const unsigned = join(proj, 'unsigned.yaml');
    writeFileSync(unsigned, readFileSync(manifest, 'utf8').replace('tag: "1.0"', 'tag: "3.0"'));
    const out = join(dir.path, 'refused.tar');
    expectCleanFailure(
      cli(['build', unsigned, '-o', out, '--require-signature', '--keyring', pub]),
      6,
      /has no signature/,
      expect,
    );
    // a signature of another manifest, via the environment
    copyFileSync(sig, unsigned + '.sig');
    const r = cli(['build', unsigned, '-o', out], {
      env: { ...env, MKIMG_REQUIRE_SIGNATURE: '1', MKIMG_KEYRING: pub },
    });
    expectCleanFailure(r, 6, /BAD signature/, expect);
    const ok = cli(['build', manifest, '-o', out, '--json'], {
      env: { ...env, MKIMG_REQUIRE_SIGNATURE: '1', MKIMG_KEYRING: pub },
    });
    expect(ok.code, ok.stderr).toBe(0);
    expect(readFileSync(out).equals(readFileSync(image))).toBe(true);
  });
});

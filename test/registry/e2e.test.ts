/**
 * Build with mkimg, sign the manifest, push, pull back (directly and through
 * the build cache), and verify the pulled image against the signed manifest.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { tmpdir } from 'node:os';
import { buildImage } from '../../src/build/build.js';
import { generateKeyFiles, signManifest } from '../../src/sign/sign.js';
import { verifyImage } from '../../src/verify/verify.js';
import { pushImage } from '../../src/registry/push.js';
import { pullImage } from '../../src/registry/pull.js';
import { cacheLookup, cachePublish } from '../../src/registry/cache.js';
import { makeDeb } from '../helpers/make-deb.js';
import { skopeo, startRegistry, type TestRegistry } from '../helpers/registry.js';

let reg: TestRegistry;
let work: string;
let manifest: string;
let sig: string;
let keyring: string;
let built: Awaited<ReturnType<typeof buildImage>>;
let imageTar: string;

beforeAll(async () => {
  reg = await startRegistry();
  work = mkdtempSync(join(tmpdir(), 'mkimg-reg-e2e-'));
  const proj = join(work, 'proj');
  mkdirSync(join(proj, 'vendor'), { recursive: true });
  const deb = makeDeb(join(proj, 'vendor'), {
    name: 'reg-busybox',
    files: { '/usr/bin/busybox': { copyFrom: '/bin/busybox', mode: 0o755 }, '/usr/bin/sh': { symlink: 'busybox' } },
  });
  manifest = join(proj, 'manifest.yaml');
  writeFileSync(
    manifest,
    `apiVersion: mkimg/v1
name: team/regtest
tag: "2.0"
sourceDateEpoch: 1700000000
packages:
  - deb: vendor/${deb.path.split('/').pop()}
    sha256: "${deb.sha256}"
config:
  entrypoint: ["/usr/bin/sh", "-c", "echo hi"]
minimize: false
`,
  );
  const key = await generateKeyFiles({ name: 'Registry Test', email: 'reg@example.org', prefix: join(work, 'key') });
  keyring = key.publicPath;
  sig = (await signManifest({ manifestPath: manifest, keyPath: key.secretPath })).output;
  imageTar = join(work, 'built.tar');
  built = await buildImage({ manifestPath: manifest, output: imageTar, cacheDir: join(work, 'cache'), quiet: true });
}, 240_000);

afterAll(async () => {
  await reg?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe('build → push → pull → verify', () => {
  it('skopeo sees the digests mkimg build printed; the pulled tar is the built tar and verifies', async () => {
    const pushed = await pushImage(imageTar, `${reg.host}/team/regtest`);
    expect(pushed.reference).toBe(`${reg.host}/team/regtest:2.0`);
    expect(pushed.manifestDigest).toBe(built.manifestDigest);
    expect(pushed.configDigest).toBe(built.imageId);
    const insp = JSON.parse(skopeo(['inspect', '--tls-verify=false', `docker://${reg.host}/team/regtest:2.0`]).stdout);
    expect(insp.Digest).toBe(built.manifestDigest);
    const cfg = skopeo(['inspect', '--config', '--raw', '--tls-verify=false', `docker://${reg.host}/team/regtest:2.0`]);
    expect('sha256:' + (await import('node:crypto')).createHash('sha256').update(cfg.stdout).digest('hex')).toBe(
      built.imageId,
    );

    const pulled = join(work, 'pulled.tar');
    const r = await pullImage(`${reg.host}/team/regtest:2.0`, pulled);
    expect(r!.name).toBe('team/regtest:2.0');
    expect(readFileSync(pulled).equals(readFileSync(imageTar))).toBe(true);

    const v = await verifyImage({ image: pulled, signature: sig, manifest, keyring, rebuild: false, quiet: true });
    expect(v.imageId).toBe(built.imageId);
    expect(v.manifestSha256).toBe(built.manifestSha256);
    expect(v.rebuild).toBe('skipped');
  });

  it('the build cache: publish, then a lookup returns a tar that verifies (with rebuild)', async () => {
    expect(await cacheLookup(`${reg.host}/mkimg-cache`, built.manifestSha256)).toBeNull();
    const pub = await cachePublish(`${reg.host}/mkimg-cache`, built.manifestSha256, imageTar);
    expect(pub.manifestDigest).toBe(built.manifestDigest);
    const hit = await cacheLookup(`${reg.host}/mkimg-cache`, built.manifestSha256, {
      name: `${built.name}:${built.tag}`,
    });
    expect(hit).not.toBeNull();
    try {
      expect(readFileSync(hit!).equals(readFileSync(imageTar))).toBe(true);
      const v = await verifyImage({
        image: hit!,
        signature: sig,
        manifest,
        keyring,
        rebuild: true,
        cacheDir: join(work, 'cache'),
        quiet: true,
      });
      expect(v.rebuild).toBe('identical');
    } finally {
      rmSync(dirname(hit!), { recursive: true, force: true });
    }
  });
});

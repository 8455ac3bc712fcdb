/**
 * An image of two platforms end to end through the CLI, fast (files and
 * accounts only, `minimize: false`, so no emulation is needed): verify checks
 * every platform and rebuilds both; inspect lists the platforms and shows
 * one; diff names the platform that differs; a platform built from another
 * manifest, a tampered arm64 layer and a lying index are refused with their
 * exit codes.
 */
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writePlatformImages } from '../../src/image/platforms.js';
import { checkImageIntegrity } from '../../src/verify/integrity.js';
import { bodyOffset, flipByte } from '../helpers/oci-fixture.js';
import { TempDir } from '../helpers/pgp.js';
import { cli, expectCleanFailure, releaseKey } from '../helpers/sign-cli.js';

let dir: TempDir;
let env: NodeJS.ProcessEnv;
let proj: string;
let manifest: string;
let sig: string;
let pub: string;
let image: string;

function manifestText(label: string): string {
  return `apiVersion: mkimg/v1
name: test/multi
tag: "1"
sourceDateEpoch: 1700000000
architectures: [amd64, arm64]
files:
  - src: app/
    dest: /app
config:
  labels: {org.example.build: "${label}"}
minimize: false
`;
}

beforeAll(() => {
  dir = new TempDir('mkimg-index-image-');
  env = { ...process.env, XDG_CACHE_HOME: join(dir.path, 'cache') };
  proj = join(dir.path, 'proj');
  mkdirSync(join(proj, 'app'), { recursive: true });
  writeFileSync(join(proj, 'app', 'hello.txt'), 'hello\n');
  manifest = join(proj, 'manifest.yaml');
  writeFileSync(manifest, manifestText('one'));
  writeFileSync(join(proj, 'other.yaml'), manifestText('two'));
  for (const m of [manifest, join(proj, 'other.yaml')]) {
    const l = cli(['lock', m], { env });
    expect(l.code, l.stderr).toBe(0);
  }
  const key = releaseKey(join(dir.path, 'rel'));
  pub = key.publicPath;
  sig = key.sign(manifest);
  image = join(dir.path, 'image.tar');
  const b = cli(['build', manifest, '-o', image, '--json'], { env });
  expect(b.code, b.stderr).toBe(0);
}, 120_000);

afterAll(() => dir?.cleanup());

describe('an image of two platforms', () => {
  it('is whole: integrity checks both platforms against the index', async () => {
    const checked = await checkImageIntegrity(image);
    expect(checked.platforms?.map((p) => p.platform)).toEqual([
      { architecture: 'amd64', os: 'linux' },
      { architecture: 'arm64', os: 'linux', variant: 'v8' },
    ]);
    expect(checked.config.architecture).toBe('amd64'); // the image Docker's manifest.json names
  });

  it('verify checks every platform and rebuilds both, byte-identical', () => {
    const r = cli(['verify', image, sig, '--keyring', pub, '--cache-dir', join(dir.path, 'fresh'), '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.steps).toEqual({ signature: 'ok', integrity: 'ok', binding: 'ok', rebuild: 'ok' });
    expect(j.platforms.map((p: { platform: string }) => p.platform)).toEqual(['linux/amd64', 'linux/arm64/v8']);
    const human = cli(['verify', image, sig, '--keyring', pub], { env });
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/rebuild: {3}ok \(byte-identical, all 2 platforms\)/);
  });

  it('inspect lists the platforms and shows the one asked for', () => {
    const all = cli(['inspect', image, '--json']);
    expect(all.code, all.stderr).toBe(0);
    const j = JSON.parse(all.stdout);
    expect(j.index.platforms.map((p: { platform: string }) => p.platform)).toEqual(['linux/amd64', 'linux/arm64/v8']);
    expect(j.platform).toEqual({ os: 'linux', architecture: 'amd64' });
    const arm = JSON.parse(cli(['inspect', image, '--json', '--platform', 'linux/arm64']).stdout);
    expect(arm.platform).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' });
    expect(arm.manifestDigest).toBe(j.index.platforms[1].manifestDigest);
    expectCleanFailure(
      cli(['inspect', image, '--platform', 'linux/s390x']),
      2,
      /has no image for linux\/s390x/,
      expect,
    );
  });

  it('a platform built from another manifest: verify exit 8 naming it; diff names the platform', async () => {
    const parts = join(dir.path, 'parts');
    mkdirSync(parts);
    const amd = join(parts, 'amd64.tar');
    const arm = join(parts, 'arm64.tar');
    expect(cli(['build', manifest, '-o', amd, '--platform', 'linux/amd64'], { env }).code).toBe(0);
    const b = cli(['build', join(proj, 'other.yaml'), '-o', arm, '--platform', 'linux/arm64'], { env });
    expect(b.code, b.stderr).toBe(0);
    const mixed = join(dir.path, 'mixed.tar');
    await writePlatformImages(
      [
        { architecture: 'amd64', tar: amd },
        { architecture: 'arm64', tar: arm },
      ],
      mixed,
      1700000000,
      'amd64',
    );
    expectCleanFailure(
      cli(['verify', mixed, sig, '--keyring', pub, '--no-rebuild']),
      8,
      /the linux\/arm64\/v8 image was built from a different manifest/,
      expect,
    );
    const d = cli(['diff', image, mixed, '--json']);
    expect(d.code).toBe(9);
    const wheres = JSON.parse(d.stdout).differences.map((x: { where: string }) => x.where);
    expect(wheres).toContain('linux/arm64/v8 config');
    expect(wheres).not.toContain('linux/amd64 config');
  });

  it('a tampered arm64 layer: verify exit 7', async () => {
    const checked = await checkImageIntegrity(image);
    const armLayer = checked.platforms![1]!.layers.at(-1)!.digest;
    const bad = join(dir.path, 'tampered.tar');
    const bytes = readFileSync(image);
    await flipByte(image, bad, bodyOffset(bytes, `blobs/sha256/${armLayer.slice(7)}`) + 100);
    expectCleanFailure(cli(['verify', bad, sig, '--keyring', pub, '--no-rebuild']), 7, /is corrupted/, expect);
  });

  it('a copy of the image pulled back from a one-platform build is not the index (verify rebuild exit 9)', () => {
    const one = join(dir.path, 'one.tar');
    expect(cli(['build', manifest, '-o', one, '--platform', 'linux/amd64'], { env }).code).toBe(0);
    const copy = join(dir.path, 'copy');
    mkdirSync(copy);
    cpSync(one, join(copy, 'image.tar'));
    expectCleanFailure(
      cli(['verify', join(copy, 'image.tar'), sig, '--keyring', pub], { env }),
      9,
      /gave different bytes/,
      expect,
    );
  });
});

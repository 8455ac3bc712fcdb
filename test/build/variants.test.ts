/**
 * A debug variant, as distroless ships `:debug`: `variants: {debug: {packages:
 * [busybox-debug]}}` pins the variant's packages in the lock and writes
 * app-debug.tar (tag TAG-debug) beside app.tar: every layer of the main image,
 * byte for byte, then one layer of the variant's packages with their status.d
 * entry; it runs a shell under runc, verify accepts both images, and the
 * bytes do not change from build to build. With several architectures the
 * variant is an image index of each platform's variant.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openImageLayout, openImageTar } from '../../src/oci/image-tar.js';
import { createAptRepo, type AptRepo, type FixturePackage } from '../helpers/apt-repo.js';
import { mkimgAsync as mkimg } from '../helpers/cli.js';
import { runImage } from '../helpers/runc.js';
import { releaseKey } from '../helpers/sign-cli.js';

let repo: AptRepo;
let work: string;
let manifest: string;
const cache = () => ['--cache-dir', join(work, 'cache')];
const sha256 = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
const hasRunc = spawnSync('runc', ['--version']).status === 0;

beforeAll(async () => {
  repo = await createAptRepo({
    suites: [
      {
        name: 'local',
        packages: [
          { name: 'app-data', version: '1', files: { '/usr/share/app/data.txt': 'data\n' } },
          {
            name: 'busybox-debug',
            version: '1',
            files: { '/usr/bin/busybox': { content: readFileSync('/bin/busybox'), mode: 0o755 } },
            symlinks: { '/usr/bin/sh': 'busybox' },
          },
        ],
      },
    ],
  });
  work = mkdtempSync(join(tmpdir(), 'mkimg-variants-'));
  mkdirSync(join(work, 'keys'));
  copyFileSync(repo.keyringPath, join(work, 'keys', 'test.asc'));
  manifest = join(work, 'manifest.yaml');
  writeFileSync(
    manifest,
    `apiVersion: mkimg/v1
name: team/app
tag: "1.0"
sourceDateEpoch: 1700000000
sources:
  - url: ${repo.url}
    suites: [local]
    keyring: keys/test.asc
packages: [app-data]
config:
  labels: {org.example.team: build}
minimize: false
variants:
  debug:
    packages: [busybox-debug]
    entrypoint: ["/usr/bin/sh"]
`,
  );
  const l = await mkimg(['lock', manifest, ...cache()]);
  expect(l.code, l.stderr).toBe(0);
});

afterAll(async () => {
  await repo?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('variants', () => {
  it('pins the variant packages apart from the main closure', () => {
    const lock = parse(readFileSync(manifest, 'utf8')).lock;
    expect(lock.packages.map((p: { name: string }) => p.name)).toEqual(['app-data']);
    expect(lock.variants.debug.packages.map((p: { name: string }) => p.name)).toEqual(['busybox-debug']);
  });

  it('writes app-debug.tar: the main layers byte for byte, then the variant layer; a shell runs; verify takes both', async () => {
    const out = join(work, 'app.tar');
    const b = await mkimg(['build', manifest, '-o', out, ...cache(), '--json']);
    expect(b.code, b.stderr).toBe(0);
    const result = JSON.parse(b.stdout);
    expect(result.variants).toEqual([
      expect.objectContaining({ name: 'debug', output: join(work, 'app-debug.tar'), packages: ['busybox-debug'] }),
    ]);
    const main = await openImageTar(out);
    const debug = await openImageTar(join(work, 'app-debug.tar'));
    expect(debug.tag).toBe('1.0-debug');
    expect(debug.imageName).toBe('docker.io/team/app:1.0-debug');
    const mainLayers = main.manifest.layers.map((l) => l.digest);
    expect(debug.manifest.layers.slice(0, mainLayers.length).map((l) => l.digest)).toEqual(mainLayers);
    expect(debug.manifest.layers).toHaveLength(mainLayers.length + 1);

    if (hasRunc) {
      const r = runImage(join(work, 'app-debug.tar'), '1.0-debug', {
        args: ['/usr/bin/busybox', 'sh', '-c', 'cat /usr/share/app/data.txt; ls /var/lib/dpkg/status.d'],
        timeoutMs: 60_000,
      });
      expect(r).toMatchObject({ code: 0, stdout: 'data\napp-data\nbusybox-debug\n' });
    }

    // Deterministic: a second build gives the same bytes for both.
    const again = join(work, 'again.tar');
    expect((await mkimg(['build', manifest, '-o', again, ...cache()])).code).toBe(0);
    expect(sha256(again)).toBe(sha256(out));
    expect(sha256(join(work, 'again-debug.tar'))).toBe(sha256(join(work, 'app-debug.tar')));

    // verify: each image against the signed manifest, rebuilt from a fresh cache.
    const key = releaseKey(join(work, 'rel'));
    const sig = key.sign(manifest);
    for (const image of [out, join(work, 'app-debug.tar')]) {
      const v = await mkimg([
        'verify',
        image,
        sig,
        '--keyring',
        key.publicPath,
        '--cache-dir',
        join(work, 'fresh'),
        '--json',
      ]);
      expect(v.code, v.stderr).toBe(0);
      expect(JSON.parse(v.stdout).steps.rebuild).toBe('ok');
    }
  });

  it("with several architectures: pins per architecture, app-debug.tar is an index of each platform's variant", async () => {
    const multiRepo = await createAptRepo({
      architectures: ['amd64', 'arm64'],
      suites: [
        {
          name: 'local',
          packages: ['amd64', 'arm64'].flatMap((architecture): FixturePackage[] => [
            { name: 'app-data', version: '1', architecture, files: { '/usr/share/app/data.txt': 'data\n' } },
            { name: 'busybox-debug', version: '1', architecture, files: { '/usr/bin/busybox': 'not run\n' } },
          ]),
        },
      ],
    });
    try {
      const dir = join(work, 'multi');
      mkdirSync(join(dir, 'keys'), { recursive: true });
      copyFileSync(multiRepo.keyringPath, join(dir, 'keys', 'test.asc'));
      const m = join(dir, 'manifest.yaml');
      writeFileSync(
        m,
        readFileSync(manifest, 'utf8')
          .split('\nlock:')[0]!
          .replace(repo.url, multiRepo.url)
          .replace('tag: "1.0"', 'tag: "1.0"\narchitectures: [amd64, arm64]'),
      );
      const l = await mkimg(['lock', m, ...cache()]);
      expect(l.code, l.stderr).toBe(0);
      const lock = parse(readFileSync(m, 'utf8')).lock;
      for (const a of ['amd64', 'arm64'])
        expect(lock.architectures[a].variants.debug.packages.map((p: { name: string }) => p.name)).toEqual([
          'busybox-debug',
        ]);
      const out = join(dir, 'app.tar');
      const b = await mkimg(['build', m, '-o', out, ...cache()]);
      expect(b.code, b.stderr).toBe(0);
      const main = await openImageLayout(out);
      const debug = await openImageLayout(join(dir, 'app-debug.tar'));
      if (main.kind !== 'index' || debug.kind !== 'index') throw new Error('expected image indexes');
      expect(debug.index.tag).toBe('1.0-debug');
      for (const [i, p] of main.index.platforms.entries()) {
        const d = debug.index.platforms[i]!;
        expect(d.platform).toEqual(p.platform);
        const layers = p.image.manifest.layers.map((x) => x.digest);
        expect(d.image.manifest.layers.slice(0, layers.length).map((x) => x.digest)).toEqual(layers);
        expect(d.image.manifest.layers).toHaveLength(layers.length + 1);
      }
      const key = releaseKey(join(dir, 'rel'));
      const sig = key.sign(m);
      const v = await mkimg(['verify', join(dir, 'app-debug.tar'), sig, '--keyring', key.publicPath, '--json']);
      expect(v.code, v.stderr).toBe(0);
      expect(JSON.parse(v.stdout).platforms).toHaveLength(2);
    } finally {
      await multiRepo.close();
    }
  });
});

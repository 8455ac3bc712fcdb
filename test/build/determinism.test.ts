/**
 * The same manifest gives the same bytes whatever the host does: working
 * directory, manifest location, TZ, umask, LANG, source mtimes, file creation
 * order and cache state. And the image runs under runc.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MKIMG } from '../helpers/cli.js';
import { SAMPLE_TAG, writeSampleApp, writeSampleProject } from '../helpers/sample-project.js';
import { runImage } from '../helpers/runc.js';
import { sha256Hex } from '../../src/util/digest.js';

const work = mkdtempSync(join(tmpdir(), 'mkimg-det-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function build(manifest: string, out: string, env: Record<string, string>, cwd: string, umask: string) {
  const r = spawnSync(
    'sh',
    ['-c', `umask ${umask}; exec "$0" "$@"`, process.execPath, MKIMG, 'build', manifest, '-o', out, '--json'],
    {
      cwd,
      env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? '/root', ...env },
      encoding: 'utf8',
      timeout: 300_000,
    },
  );
  if (r.status !== 0) throw new Error(`build failed (${r.status}): ${r.stderr}\n${r.stdout}`);
  return JSON.parse(r.stdout) as { imageId: string; manifestDigest: string; output: string; sizeBytes: number };
}

describe('determinism', () => {
  let projA: string;

  beforeAll(() => {
    projA = join(work, 'a', 'project');
    writeSampleProject(projA);
  });

  it('gives byte-identical tars across cwd, location, TZ, umask, LANG, mtimes, file order and cache', () => {
    const outA = join(work, 'a.tar');
    const a = build(
      join(projA, 'manifest.yaml'),
      outA,
      { TZ: 'UTC', LANG: 'C', XDG_CACHE_HOME: join(work, 'cache-a') },
      projA,
      '022',
    );

    // Another location, rebuilt tree in reverse creation order, other mtimes, other umask/TZ/LANG/cwd/cache.
    const projB = join(work, 'elsewhere', 'deeper', 'proj');
    mkdirSync(projB, { recursive: true });
    cpSync(join(projA, 'vendor'), join(projB, 'vendor'), { recursive: true });
    cpSync(join(projA, 'manifest.yaml'), join(projB, 'manifest.yaml'));
    writeSampleApp(projB, true);
    const stamp = (dir: string, t: number) => {
      for (const n of readdirSync(dir, { withFileTypes: true, recursive: true }))
        utimesSync(join(n.parentPath, n.name), t, t);
    };
    stamp(join(projB, 'app'), 1234567890);
    const outB = join(work, 'b.tar');
    const cwdB = mkdtempSync(join(tmpdir(), 'mkimg-cwd-'));
    const b = build(
      join(projB, 'manifest.yaml'),
      outB,
      { TZ: 'Asia/Tokyo', LANG: 'de_DE.UTF-8', LC_ALL: 'de_DE.UTF-8', XDG_CACHE_HOME: join(work, 'cache-b') },
      cwdB,
      '077',
    );
    rmSync(cwdB, { recursive: true, force: true });

    expect(sha256Hex(readFileSync(outB))).toBe(sha256Hex(readFileSync(outA)));
    expect(b).toMatchObject({ imageId: a.imageId, manifestDigest: a.manifestDigest, sizeBytes: a.sizeBytes });
    expect(a.imageId).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it('keeps the files: mode rule and the package owners in the layers', () => {
    const out = join(work, 'modes.tar');
    build(join(projA, 'manifest.yaml'), out, {}, work, '022');
    const layout = join(work, 'modes');
    mkdirSync(layout);
    execFileSync('tar', ['-xf', out, '-C', layout]);
    const manifest = JSON.parse(
      readFileSync(
        join(
          layout,
          'blobs/sha256',
          JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')).manifests[0].digest.slice(7),
        ),
        'utf8',
      ),
    );
    // Every layer (GNU tar reads the gzip layers as they are).
    const layers: string[] = manifest.layers.map((l: { digest: string }) =>
      join(layout, 'blobs/sha256', l.digest.slice(7)),
    );
    const listing = layers
      .map((layer) => execFileSync('tar', ['--numeric-owner', '-tvf', layer], { encoding: 'utf8' }))
      .join('');
    const line = (name: string) =>
      listing.split('\n').find((l) => l.endsWith(` ${name}`) || l.includes(` ${name} -> `)) ?? `missing ${name}`;
    expect(line('app/run.sh')).toMatch(/^-rwxr-xr-x 0\/0 /);
    expect(line('app/static/index.html')).toMatch(/^-rw-r--r-- 0\/0 /);
    expect(line('app/static/css/site.css')).toMatch(/^-rw-r--r-- 0\/0 /);
    expect(line('app/static/')).toMatch(/^drwxr-xr-x 0\/0 /);
    expect(line('usr/bin/busybox')).toMatch(/^-rwxr-xr-x 0\/0 /);
    expect(line('usr/bin/sh')).toMatch(/^lrwxrwxrwx 0\/0 .* usr\/bin\/sh -> busybox$/);
    expect(line('bin')).toMatch(/^lrwxrwxrwx 0\/0 .* bin -> usr\/bin$/);
    // every mtime is sourceDateEpoch
    const stamps = new Set(
      layers.flatMap((layer) =>
        execFileSync('tar', ['--full-time', '-tvf', layer], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } })
          .trim()
          .split('\n')
          .map((l) => l.split(/\s+/).slice(3, 5).join(' ')),
      ),
    );
    expect([...stamps]).toEqual(['2023-11-14 22:13:20']);
  });

  it('runs under runc: the entrypoint prints what it should', () => {
    const out = join(work, 'run.tar');
    build(join(projA, 'manifest.yaml'), out, {}, work, '022');
    const r = runImage(out, SAMPLE_TAG);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('hello from /app/run.sh\n');
    expect(r.code).toBe(0);
  });

  it('--data-cache is opt-in and gives the same bytes', () => {
    const cache = join(work, 'datacache');
    const plain = build(join(projA, 'manifest.yaml'), join(work, 'plain.tar'), { XDG_CACHE_HOME: cache }, work, '022');
    expect(existsSync(join(cache, 'mkimg', 'data'))).toBe(false);
    // A cache of its own: the plain build kept the packages' archives and index (roots/), which a later
    // build would use without reading any data archive.
    const dataCache = join(work, 'datacache-2');
    const withCache = (out: string) => {
      const r = spawnSync(
        process.execPath,
        [MKIMG, 'build', join(projA, 'manifest.yaml'), '-o', out, '--json', '--data-cache'],
        {
          env: { ...process.env, XDG_CACHE_HOME: dataCache },
          encoding: 'utf8',
        },
      );
      expect(r.status, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as { imageId: string };
    };
    const cold = withCache(join(work, 'dc1.tar'));
    expect(readdirSync(join(dataCache, 'mkimg', 'data', 'sha256')).filter((f) => f.endsWith('.tar')).length).toBe(1);
    const warm = withCache(join(work, 'dc2.tar'));
    expect([cold.imageId, warm.imageId]).toEqual([plain.imageId, plain.imageId]);
    expect(sha256Hex(readFileSync(join(work, 'dc2.tar')))).toBe(sha256Hex(readFileSync(join(work, 'plain.tar'))));
  });
});

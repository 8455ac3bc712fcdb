import { describe, it, expect, beforeAll, afterAll, beforeEach } from 'vitest';
import { mkdtempSync, rmSync, readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { createAptRepo, type AptRepo } from '../helpers/apt-repo.js';
import { fetchPinnedDebs } from '../../src/debian/fetch-debs.js';
import { BlobCache, defaultCacheDir } from '../../src/fetch/cache.js';
import type { LockedPackage } from '../../src/manifest/types.js';
import { rejection } from '../helpers/errors.js';

let repo: AptRepo;
let cacheDir: string;

beforeAll(async () => {
  repo = await createAptRepo({
    suites: [
      {
        name: 'stable',
        packages: [
          { name: 'alpha', version: '1.0', files: { '/usr/share/alpha/data': 'a'.repeat(200_000) } },
          { name: 'beta', version: '2.0' },
          { name: 'gamma', version: '3.0' },
          { name: 'delta', version: '4.0' },
        ],
      },
    ],
  });
});

afterAll(async () => {
  await repo?.close();
});

beforeEach(() => {
  if (cacheDir) rmSync(cacheDir, { recursive: true, force: true });
  cacheDir = mkdtempSync(join(tmpdir(), 'mkimg-cache-'));
  return () => rmSync(cacheDir, { recursive: true, force: true });
});

const pin = (name: string): LockedPackage => {
  const d = repo.deb(name);
  return {
    name,
    version: d.version,
    architecture: d.architecture,
    suite: 'stable',
    filename: d.filename,
    sha256: d.sha256,
    size: d.size,
  };
};
const opts = () => ({ sources: [repo.source('stable')], cacheDir, aptRoot: '/nonexistent', env: {} });
const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
const blobNames = () => readdirSync(join(cacheDir, 'blobs', 'sha256'));

describe('fetchPinnedDebs and the content-addressed cache', () => {
  it('downloads, verifies and stores by sha256', async () => {
    const got = await fetchPinnedDebs(['alpha', 'beta', 'gamma'].map(pin), opts());
    expect([...got.keys()].sort()).toEqual(['alpha', 'beta', 'gamma']);
    for (const [name, path] of got) {
      expect(path).toBe(join(cacheDir, 'blobs', 'sha256', repo.deb(name).sha256));
      expect(sha(path)).toBe(repo.deb(name).sha256);
    }
    expect(blobNames().filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('builds from a warm cache with the server stopped (no network at all)', async () => {
    await fetchPinnedDebs(['alpha', 'beta'].map(pin), opts());
    const before = repo.requests.length;
    await repo.stop();
    try {
      // a mirror that does not exist: it must not even be consulted
      const got = await fetchPinnedDebs(['alpha', 'beta'].map(pin), {
        ...opts(),
        sources: [{ ...repo.source('stable'), url: 'http://127.0.0.1:9/nothing' }],
      });
      expect(sha(got.get('alpha')!)).toBe(repo.deb('alpha').sha256);
      expect(repo.requests.length).toBe(before);
      // and a cold entry fails with a repository error naming the URL
      const e = await rejection(fetchPinnedDebs([pin('delta')], opts()));
      expect(e.kind).toBe('repository');
      expect(e.message).toContain('/pool/main/d/delta/delta_4.0_amd64.deb');
    } finally {
      await repo.start();
    }
  });

  it('deletes a corrupted cache entry and fetches it again', async () => {
    const first = await fetchPinnedDebs([pin('alpha')], opts());
    const path = first.get('alpha')!;
    const bytes = readFileSync(path);
    bytes[100] = bytes[100]! ^ 0xff;
    writeFileSync(path, bytes);
    const before = repo.requests.filter((r) => r.endsWith('alpha_1.0_amd64.deb')).length;
    const again = await fetchPinnedDebs([pin('alpha')], opts());
    expect(sha(again.get('alpha')!)).toBe(repo.deb('alpha').sha256);
    expect(repo.requests.filter((r) => r.endsWith('alpha_1.0_amd64.deb')).length).toBe(before + 1);
    // a truncated entry too
    writeFileSync(path, bytes.subarray(0, 10));
    expect(await new BlobCache(cacheDir).lookup(repo.deb('alpha').sha256, repo.deb('alpha').size)).toBeUndefined();
    expect(existsSync(path)).toBe(false);
  });

  it('is safe when two fetches of the same blobs run at once', async () => {
    const pins = ['alpha', 'beta', 'gamma', 'delta'].map(pin);
    const [a, b, c] = await Promise.all([
      fetchPinnedDebs(pins, { ...opts(), concurrency: 2 }),
      fetchPinnedDebs(pins, { ...opts(), concurrency: 4 }),
      fetchPinnedDebs([...pins].reverse(), opts()),
    ]);
    for (const m of [a, b, c]) for (const p of pins) expect(sha(m.get(p.name)!)).toBe(p.sha256);
    expect(blobNames().sort()).toEqual(pins.map((p) => p.sha256).sort());
  });

  it('refuses a .deb whose bytes changed on the server (input error), caching nothing', async () => {
    repo.replaceDeb('gamma');
    try {
      const e = await rejection(fetchPinnedDebs([pin('gamma')], opts()));
      expect(e.kind).toBe('input');
      expect(e.message).toMatch(/gamma 3\.0: .* but the lock pins \d+ bytes with sha256 [0-9a-f]{64}/);
      expect(existsSync(join(cacheDir, 'blobs', 'sha256', repo.deb('gamma').sha256))).toBe(false);
      expect(blobNames()).toEqual([]);
    } finally {
      repo.serve('/' + repo.deb('gamma').filename, readFileSync(repo.deb('gamma').path));
    }
  });

  it('explains a pinned .deb the mirror no longer serves (404)', async () => {
    repo.serve('/' + repo.deb('beta').filename, null);
    try {
      const e = await rejection(fetchPinnedDebs([pin('beta')], opts()));
      expect(e.kind).toBe('repository');
      expect(e.message).toContain(
        'beta 2.0: the mirror no longer serves pool/main/b/beta/beta_2.0_amd64.deb (HTTP 404',
      );
      expect(e.hint).toMatch(/snapshot archive: --mirror stable=URL/);
    } finally {
      repo.serve('/' + repo.deb('beta').filename, readFileSync(repo.deb('beta').path));
    }
  });

  it('takes the mirror from --mirror before the manifest url', async () => {
    const got = await fetchPinnedDebs([pin('beta')], {
      ...opts(),
      sources: [{ ...repo.source('stable'), url: 'http://127.0.0.1:9/wrong' }],
      mirrors: { stable: repo.url },
    });
    expect(sha(got.get('beta')!)).toBe(repo.deb('beta').sha256);
  });

  it('puts the default cache under XDG_CACHE_HOME', () => {
    expect(defaultCacheDir({ XDG_CACHE_HOME: '/x/cache' })).toBe('/x/cache/mkimg');
    expect(defaultCacheDir({})).toMatch(/\.cache\/mkimg$/);
  });
});

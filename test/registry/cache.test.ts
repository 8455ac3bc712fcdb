import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { tmpdir } from 'node:os';
import { createHash } from 'node:crypto';
import { cacheLookup, cachePublish, cacheTag } from '../../src/registry/cache.js';
import { pushImage } from '../../src/registry/push.js';
import { makeTestImage } from '../helpers/oci-image.js';
import { startProxy, startRegistry, uploadRequests, type TestRegistry } from '../helpers/registry.js';

let reg: TestRegistry;
let dir: string;
beforeAll(async () => {
  reg = await startRegistry();
  dir = mkdtempSync(join(tmpdir(), 'mkimg-cache-test-'));
});
afterAll(async () => {
  await reg?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const manifestSha = (s: string) => createHash('sha256').update(s).digest('hex');

describe('registry as a build cache', () => {
  it('misses, then after publishing returns a tar byte-identical to the built one', async () => {
    const h = manifestSha('manifest bytes A');
    expect(cacheTag(h)).toBe(`mkimg-${h.slice(0, 40)}`);
    expect(await cacheLookup(`${reg.host}/cache`, h)).toBeNull();

    const tar = join(dir, 'a.tar');
    const built = makeTestImage(tar, { name: 'svc', tag: '3', manifestSha256: h });
    const pub = await cachePublish(`${reg.host}/cache`, h, tar);
    expect(pub.reference).toBe(`${reg.host}/cache:mkimg-${h.slice(0, 40)}`);
    expect(pub.manifestDigest).toBe(built.manifestDigest);

    const hit = await cacheLookup(`${reg.host}/cache`, h, { name: 'svc:3' });
    expect(hit).not.toBeNull();
    expect(readFileSync(hit!).equals(readFileSync(tar))).toBe(true);
    rmSync(dirname(hit!), { recursive: true, force: true });

    // Another manifest misses.
    expect(await cacheLookup(`${reg.host}/cache`, manifestSha('manifest bytes B'))).toBeNull();
  });

  it('ignores an entry whose manifest label does not match (with a warning)', async () => {
    const h = manifestSha('manifest C');
    const tar = join(dir, 'c.tar');
    makeTestImage(tar, { name: 'svc', tag: '3', manifestSha256: manifestSha('something else') });
    await cachePublish(`${reg.host}/cache`, h, tar);
    const warnings: string[] = [];
    const into = mkdtempSync(join(dir, 'into-'));
    expect(await cacheLookup(`${reg.host}/cache`, h, { dir: into, onWarning: (w) => warnings.push(w) })).toBeNull();
    expect(warnings.join('\n')).toContain('org.mkimg.manifest.sha256');
    expect(existsSync(join(into, `${cacheTag(h)}.tar`))).toBe(false);
  });

  it('mounts blobs from the cache repository instead of uploading them', async () => {
    const h = manifestSha('manifest D');
    const tar = join(dir, 'd.tar');
    const built = makeTestImage(tar, { name: 'svc', tag: '4', manifestSha256: h, files: { '/data/x': 500_000 } });
    await cachePublish(`${reg.host}/cache`, h, tar);
    const proxy = await startProxy(reg.host);
    try {
      const r = await pushImage(tar, `${proxy.host}/release/svc:4`, { mountFrom: 'cache' });
      expect(r.manifestDigest).toBe(built.manifestDigest);
      expect(r.blobsMounted).toBe(2);
      expect(r.blobsUploaded).toBe(0);
      expect(r.bytesUploaded).toBe(0);
      const ups = uploadRequests(proxy.log);
      expect(ups.length).toBe(2);
      for (const u of ups) {
        expect(u.method).toBe('POST');
        expect(u.path).toContain('mount=sha256');
        expect(u.path).toContain('from=cache');
        expect(u.status).toBe(201);
      }
      // Mount from a repository that lacks the blobs falls back to an upload.
      const t2 = join(dir, 'e.tar');
      makeTestImage(t2, { name: 'svc', tag: '5', labels: { v: '5' } });
      const r2 = await pushImage(t2, `${proxy.host}/release/svc:5`, { mountFrom: `${proxy.host}/empty` });
      expect(r2.blobsMounted).toBe(0);
      expect(r2.blobsUploaded).toBe(2);
    } finally {
      await proxy.stop();
    }
  });
});

describe('cachedBuild (build --cache-registry glue)', () => {
  it('builds once, then machines sharing the registry pull instead; a rejected hit rebuilds; --push mounts', async () => {
    const { cachedBuild } = await import('../../src/registry/build-cache.js');
    const { writeFileSync } = await import('node:fs');
    const manifestPath = join(dir, 'glue-manifest.yaml');
    writeFileSync(manifestPath, 'name: glue\n');
    const h = createHash('sha256').update(readFileSync(manifestPath)).digest('hex');
    let builds = 0;
    const common = {
      cacheRepo: `${reg.host}/glue-cache`,
      manifestSha256: h,
      name: 'glue',
      tag: '1',
      build: async () => {
        builds++;
        makeTestImage(join(dir, `glue-${builds}.tar`), { name: 'glue', tag: '1', manifestSha256: h });
        (await import('node:fs')).renameSync(join(dir, `glue-${builds}.tar`), join(dir, `out-${builds}.tar`));
      },
    };
    // Machine A: miss → build → publish.
    const a = await cachedBuild({ ...common, output: join(dir, 'out-1.tar') });
    expect(a.cache).toBe('miss');
    expect(builds).toBe(1);
    expect(a.published?.blobsUploaded).toBe(2);
    // Machine B: hit, checked, no build, same bytes; pushes to a release repo by mounting.
    const checked: string[] = [];
    const b = await cachedBuild({
      ...common,
      output: join(dir, 'out-b.tar'),
      check: async (p) => {
        checked.push(p);
      },
      push: `${reg.host}/glue-release:1`,
    });
    expect(b.cache).toBe('hit');
    expect(builds).toBe(1);
    expect(checked.length).toBe(1);
    expect(readFileSync(join(dir, 'out-b.tar')).equals(readFileSync(join(dir, 'out-1.tar')))).toBe(true);
    expect(b.pushed?.blobsMounted).toBe(2);
    // A hit whose check fails is rebuilt.
    const c = await cachedBuild({
      ...common,
      output: join(dir, 'out-2.tar'),
      check: async () => {
        throw new Error('signature does not verify');
      },
    });
    expect(c.cache).toBe('rejected');
    expect(builds).toBe(2);
    // A cache that is down does not fail the build.
    const notes: string[] = [];
    const d = await cachedBuild({
      ...common,
      cacheRepo: '127.0.0.1:1/none',
      output: join(dir, 'out-3.tar'),
      registry: { retries: 0 },
      onNote: (m) => notes.push(m),
    });
    expect(d.cache).toBe('unavailable');
    expect(builds).toBe(3);
    expect(notes.join('\n')).toContain('ECONNREFUSED');
  });
});

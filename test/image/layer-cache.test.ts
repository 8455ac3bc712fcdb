/**
 * Compressed layers reused by diff_id: a second build takes the blob from the
 * cache (same bytes as compressing again); a damaged entry is found (its
 * bytes do not match its digest), dropped and replaced, and the image is the
 * same; a planted one can only give an image the integrity check refuses.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LayerBlobCache } from '../../src/image/layer-cache.js';
import { MkimgError } from '../../src/util/errors.js';
import { checkImageIntegrity } from '../../src/verify/integrity.js';
import type { LayerEntry } from '../../src/image/layer.js';
import { type ImageSpec, type KnownLayers, writeLayeredImage } from '../../src/image/write-image.js';
import { execFileSync } from 'node:child_process';

let work: string;
const spec: ImageSpec = {
  name: 'test/cache',
  tag: '1',
  architecture: 'amd64',
  sourceDateEpoch: 1700000000,
  config: { env: {}, labels: {}, exposedPorts: [] },
  manifestSha256: 'a'.repeat(64),
};
const sha256 = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'mkimg-layer-cache-'));
  mkdirSync(join(work, 'files'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

function entries(): LayerEntry[] {
  const out: LayerEntry[] = [];
  for (let i = 0; i < 20; i++) {
    const host = join(work, 'files', `f${i}`);
    writeFileSync(host, `file ${i}\n`.repeat(500 * (i + 1)));
    out.push({
      path: `/data/f${i}`,
      type: 'file',
      mode: 0o644,
      uid: 0,
      gid: 0,
      size: readFileSync(host).length,
      hostPath: host,
    });
  }
  return out;
}

async function build(name: string, cache?: LayerBlobCache): Promise<string> {
  const out = join(work, `${name}.tar`);
  const wd = mkdtempSync(join(work, 'wd-'));
  await writeLayeredImage(spec, [{ name: 'all', entries: entries() }], out, {
    compression: 'gzip',
    workDir: wd,
    layerCache: cache,
  });
  rmSync(wd, { recursive: true, force: true });
  return out;
}

describe('compressed layers by diff_id', () => {
  it('reuses a cached blob, checked against its digest; a damaged entry is dropped and replaced', async () => {
    const plain = sha256(await build('plain'));
    const cacheDir = join(work, 'cache');
    const cache = new LayerBlobCache(cacheDir);
    // Folders of older formats, never read again: removed when a blob is kept; other compressions' stay.
    for (const old of ['gzip', 'gzip-3', 'zstd-1']) mkdirSync(join(cacheDir, 'layers', old, 'x'), { recursive: true });
    expect(sha256(await build('first', cache))).toBe(plain);
    expect(readdirSync(join(cacheDir, 'layers')).sort()).toEqual(['gzip-4', 'zstd-1']);
    const dir = join(cacheDir, 'layers', 'gzip-4');
    const [diffId] = readdirSync(dir);
    expect(diffId).toMatch(/^[0-9a-f]{64}$/);
    const [blobHex] = readdirSync(join(dir, diffId!));
    const blobPath = join(dir, diffId!, blobHex!);
    expect(sha256(blobPath)).toBe(blobHex);
    const hit = await cache.lookup(diffId!, 'gzip');
    expect(hit?.sha256).toBe(blobHex);
    expect(sha256(await build('second', cache))).toBe(plain);

    // Damaged: cut short.
    const blob = readFileSync(blobPath);
    writeFileSync(blobPath, blob.subarray(0, blob.length >> 1));
    expect(await cache.lookup(diffId!, 'gzip')).toBeUndefined();
    expect(readdirSync(dir)).toEqual([]);
    expect(sha256(await build('after-damage', cache))).toBe(plain);
    expect((await cache.lookup(diffId!, 'gzip'))?.size).toBe(blob.length);

    // A file where the entry's folder belongs (an older cache's layout): dropped, the layer compressed again.
    rmSync(join(dir, diffId!), { recursive: true });
    writeFileSync(join(dir, diffId!), blob);
    expect(sha256(await build('after-old-layout', cache))).toBe(plain);
    expect(readdirSync(join(dir, diffId!))).toEqual([blobHex]);
  });

  it('a big layer the cache has is only hashed: its tar is never written, the image is the same', async () => {
    const big: LayerEntry[] = [];
    for (let i = 0; i < 4; i++) {
      const host = join(work, 'files', `big${i}`);
      writeFileSync(host, Buffer.alloc(600_000, i + 1));
      big.push({ path: `/big/f${i}`, type: 'file', mode: 0o644, uid: 0, gid: 0, size: 600_000, hostPath: host });
    }
    const cache = new LayerBlobCache(join(work, 'big-cache'));
    const once = async (name: string, knownLayers?: KnownLayers) => {
      const out = join(work, `${name}.tar`);
      const wd = mkdtempSync(join(work, 'wd-'));
      await writeLayeredImage(spec, [{ name: 'big', entries: big }], out, {
        compression: 'gzip',
        workDir: wd,
        layerCache: cache,
        ...(knownLayers ? { knownLayers } : {}),
      });
      const written = readdirSync(wd);
      rmSync(wd, { recursive: true, force: true });
      return { sha: sha256(out), written };
    };
    const first = await once('big-first');
    expect(first.written).toContain('layer-0.tar');
    const second = await once('big-second');
    expect(second.written).toEqual([]);
    expect(second.sha).toBe(first.sha);

    // Known layers (by layerKey): what a build writes is remembered as its diff_id; a later build
    // takes it from there (not even hashing the layer), and an answer the cache cannot match
    // (a diff_id it has no blob of, a wrong size) is passed over: the same image every time.
    const big256 = (i: number) =>
      createHash('sha256')
        .update(Buffer.alloc(600_000, i + 1))
        .digest('hex');
    for (const [i, e] of big.entries()) e.sha256 = big256(i);
    const known = new Map<string, { sha256: string; size: number }>();
    const memo: KnownLayers = { get: (k) => known.get(k), set: (k, v) => known.set(k, v) };
    expect((await once('big-known-1', memo)).sha).toBe(first.sha);
    expect(known.size).toBe(1);
    const [key, layer] = [...known.entries()][0]!;
    const member = (name: string) =>
      JSON.parse(execFileSync('tar', ['-xOf', join(work, 'big-known-1.tar'), name]).toString());
    const blob = (d: string) => `blobs/sha256/${d.slice('sha256:'.length)}`;
    const manifest = member(blob(member('index.json').manifests[0].digest));
    expect(member(blob(manifest.config.digest)).rootfs.diff_ids).toEqual([`sha256:${layer.sha256}`]);
    expect((await once('big-known-2', memo)).sha).toBe(first.sha);
    for (const wrong of [
      { sha256: 'f'.repeat(64), size: layer.size },
      { sha256: layer.sha256, size: layer.size + 1 },
    ]) {
      known.set(key, wrong);
      const r = await once('big-known-wrong', memo);
      expect(r.sha).toBe(first.sha);
    }
  });

  it('a planted entry (other bytes under their own digest) can only give an image every check refuses', async () => {
    const cacheDir = join(work, 'planted-cache');
    const cache = new LayerBlobCache(cacheDir);
    await build('planted-first', cache);
    const dir = join(cacheDir, 'layers', 'gzip-4');
    const [diffId] = readdirSync(dir);
    rmSync(join(dir, diffId!), { recursive: true });
    const other = gzipSync(Buffer.from('not the layer'));
    const otherHex = createHash('sha256').update(other).digest('hex');
    mkdirSync(join(dir, diffId!));
    writeFileSync(join(dir, diffId!, otherHex), other);
    const out = await build('planted', cache);
    // The config still names the layer's true diff_id (computed from the files), so the blob contradicts it.
    const e = await checkImageIntegrity(out).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(MkimgError);
    expect((e as MkimgError).kind).toBe('integrity');
  });
});

/**
 * Compressed layers reused by diff_id: a second build takes the blob from the
 * cache (same bytes as compressing again); a planted or damaged entry is
 * found (it does not decompress to the diff_id), dropped and replaced, and
 * the image is the same.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LayerBlobCache } from '../../src/image/layer-cache.js';
import type { LayerEntry } from '../../src/image/layer.js';
import { writeLayeredImage, type ImageSpec } from '../../src/image/write-image.js';

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
  it('reuses a cached blob, and refuses a planted or damaged one', async () => {
    const plain = sha256(await build('plain'));
    const cacheDir = join(work, 'cache');
    const cache = new LayerBlobCache(cacheDir);
    expect(sha256(await build('first', cache))).toBe(plain);
    const dir = join(cacheDir, 'layers', 'gzip');
    const [diffId] = readdirSync(dir);
    expect(diffId).toMatch(/^[0-9a-f]{64}$/);
    const hit = await cache.lookup(diffId!, 'gzip');
    expect(hit?.sha256).toBeDefined();
    expect(sha256(await build('second', cache))).toBe(plain);

    // Planted: a valid gzip of other bytes under the layer's diff_id.
    writeFileSync(join(dir, diffId!), gzipSync(Buffer.from('not the layer')));
    expect(await cache.lookup(diffId!, 'gzip')).toBeUndefined();
    expect(readdirSync(dir)).toEqual([]);
    expect(sha256(await build('after-plant', cache))).toBe(plain);

    // Damaged: cut short.
    const blob = readFileSync(join(dir, diffId!));
    writeFileSync(join(dir, diffId!), blob.subarray(0, blob.length >> 1));
    expect(sha256(await build('after-damage', cache))).toBe(plain);
    expect((await cache.lookup(diffId!, 'gzip'))?.size).toBe(blob.length);
  });
});

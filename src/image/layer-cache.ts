/**
 * Compressed layers kept in the cache by what they hold: the blob of a layer
 * whose uncompressed digest (its diff_id) and compression are known is
 * reused instead of compressed again (an app edit leaves the package layer
 * as it was: compressing it was most of a warm build's layer write). The
 * compressors are deterministic, so a reused blob has exactly the bytes a
 * fresh compression would give. Whoever can write the cache could plant a
 * blob, so a hit is decompressed (bounded) and must give the diff_id, else
 * it is deleted and the layer compressed again. Entries are written to a
 * temporary name and renamed: concurrent builds and kills leave whole
 * entries or none.
 */
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, createReadStream, linkSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { sha256File } from '../util/digest.js';
import { join } from 'node:path';
import { LayerDecoder, MAX_RATIO, MAX_SLACK } from '../oci/compress.js';
import type { Compression } from '../oci/model.js';
import { collectStale } from '../util/cleanup.js';

export interface CachedLayerBlob {
  path: string;
  /** sha256 hex of the compressed bytes. */
  sha256: string;
  size: number;
}

type Compressed = Exclude<Compression, 'none'>;

/**
 * sha256 hex of what a compressed blob decompresses to, bounded as every
 * layer mkimg reads (MAX_RATIO, MAX_SLACK). gzip streams through node:zlib
 * (native: several times faster than the pure-JS decoder; only our own
 * cache is read here), zstd through the bounded LayerDecoder.
 */
async function decompressedDigest(path: string, size: number, compression: Compressed): Promise<string> {
  const limit = size * MAX_RATIO + MAX_SLACK;
  const hash = createHash('sha256');
  if (compression === 'gzip') {
    let out = 0;
    const count = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        out += chunk.length;
        if (out > limit) cb(new Error('decompresses past the bound'));
        else {
          hash.update(chunk);
          cb();
        }
      },
    });
    await pipeline(createReadStream(path, { highWaterMark: 1 << 20 }), createGunzip(), count);
    return hash.digest('hex');
  }
  const decoder = new LayerDecoder(compression, size, `cached layer ${path}`, (c) => hash.update(c));
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) decoder.write(chunk as Buffer);
  decoder.end();
  return hash.digest('hex');
}

export class LayerBlobCache {
  private readonly dir: string;
  constructor(cacheDir: string) {
    this.dir = join(cacheDir, 'layers');
  }

  private pathOf(diffIdHex: string, compression: Compressed): string {
    return join(this.dir, compression, diffIdHex);
  }

  /** The cached blob of the layer with this diff_id, checked to decompress to it; undefined on a miss. */
  async lookup(diffIdHex: string, compression: Compressed): Promise<CachedLayerBlob | undefined> {
    const path = this.pathOf(diffIdHex, compression);
    let size: number;
    try {
      size = statSync(path).size;
    } catch {
      return undefined;
    }
    let ok = false;
    let blobHex = '';
    try {
      const [digest, layer] = await Promise.all([sha256File(path), decompressedDigest(path, size, compression)]);
      blobHex = digest.hex;
      ok = layer === diffIdHex && digest.size === size;
    } catch {
      ok = false;
    }
    if (!ok) {
      rmSync(path, { force: true }); // planted or damaged: compressed again and replaced
      return undefined;
    }
    return { path, sha256: blobHex, size };
  }

  /** Keep a freshly compressed blob (best effort: a cache that cannot be written costs the next build time, not this one). */
  store(diffIdHex: string, compression: Compressed, blobPath: string): void {
    try {
      const dest = this.pathOf(diffIdHex, compression);
      mkdirSync(join(this.dir, compression), { recursive: true });
      // Temporaries of builds that were killed (their pid is in the name) go first.
      collectStale(join(this.dir, compression), /\.tmp-(\d+)-[0-9a-f]+$/);
      const tmp = `${dest}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
      try {
        linkSync(blobPath, tmp);
      } catch {
        copyFileSync(blobPath, tmp);
      }
      renameSync(tmp, dest);
    } catch {
      // not kept
    }
  }
}

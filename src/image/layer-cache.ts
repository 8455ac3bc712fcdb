/**
 * Compressed layers kept in the cache by what they hold: the blob of a layer
 * whose uncompressed digest (its diff_id) and compression are known is
 * reused instead of compressed again (an app edit leaves the package layer
 * as it was: compressing it was most of a warm build's layer write). The
 * compressors are deterministic, so a reused blob has exactly the bytes a
 * fresh compression would give.
 *
 * An entry is `layers/<compression>-<format>/<diff_id hex>/<blob sha256 hex>`
 * (the compressor's format number, BLOB_FORMAT: a blob an older compressor
 * made is never reused where a fresh one would give other bytes): a hit
 * re-hashes the blob against its name, so a damaged or cut entry is found,
 * deleted and the layer compressed again. That the blob decompresses to the
 * diff_id is the cache's word, as for the staged roots beside it (checking it
 * cost a third of a warm build): whoever could plant an entry could only
 * make an image whose layer does not decompress to the diff_id its config
 * names, which every runtime refuses on pull or load and `mkimg verify`
 * reports; verify's rebuild never reads this cache. Entries are filled under
 * a temporary name and renamed: concurrent builds and kills leave whole
 * entries or none.
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, linkSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BLOB_FORMAT } from '../oci/compress.js';
import type { Compression } from '../oci/model.js';
import { collectStale } from '../util/cleanup.js';
import { SHA256_HEX, sha256FileSyncOnly } from '../util/digest.js';

export interface CachedLayerBlob {
  path: string;
  /** sha256 hex of the compressed bytes. */
  sha256: string;
  size: number;
}

type Compressed = Exclude<Compression, 'none'>;

export class LayerBlobCache {
  private readonly dir: string;
  constructor(cacheDir: string) {
    this.dir = join(cacheDir, 'layers');
  }

  /** The folder of a compression's blobs, named with the compressor's format (see BLOB_FORMAT). */
  private folderOf(compression: Compressed): string {
    return join(this.dir, `${compression}-${BLOB_FORMAT[compression]}`);
  }

  private entryOf(diffIdHex: string, compression: Compressed): string {
    return join(this.folderOf(compression), diffIdHex);
  }

  /** Whether any blob of this compression's format is kept (none: no lookup can hit). */
  holdsAny(compression: Compressed): boolean {
    try {
      return readdirSync(this.folderOf(compression)).some((n) => SHA256_HEX.test(n));
    } catch {
      return false;
    }
  }

  /** The cached blob of the layer with this diff_id, its bytes checked against its digest; undefined on a miss. */
  async lookup(diffIdHex: string, compression: Compressed): Promise<CachedLayerBlob | undefined> {
    const entry = this.entryOf(diffIdHex, compression);
    let names: string[];
    try {
      names = readdirSync(entry);
    } catch (e) {
      // No entry; or a file where the entry's folder belongs (damaged, or an older cache's layout): dropped.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') rmSync(entry, { recursive: true, force: true });
      return undefined;
    }
    const blobHex = names.length === 1 && SHA256_HEX.test(names[0]!) ? names[0]! : undefined;
    if (blobHex) {
      const path = join(entry, blobHex);
      try {
        const size = statSync(path).size;
        const got = sha256FileSyncOnly(path);
        if (got.hex === blobHex && got.size === size) return { path, sha256: blobHex, size };
      } catch {
        // unreadable: dropped below
      }
    }
    rmSync(entry, { recursive: true, force: true }); // damaged: compressed again and replaced
    return undefined;
  }

  /** Blobs of this compression's older formats (and of the layout before formats) are never read again: removed. */
  private dropOlderFormats(compression: Compressed): void {
    const current = `${compression}-${BLOB_FORMAT[compression]}`;
    for (const name of readdirSync(this.dir)) {
      if (name !== current && (name === compression || new RegExp(`^${compression}-\\d+$`).test(name)))
        rmSync(join(this.dir, name), { recursive: true, force: true });
    }
  }

  /** Keep a freshly compressed blob (best effort: a cache that cannot be written costs the next build time, not this one). */
  store(diffIdHex: string, compression: Compressed, blob: { path: string; sha256: string }): void {
    const parent = this.folderOf(compression);
    let tmp: string | undefined;
    try {
      mkdirSync(parent, { recursive: true });
      this.dropOlderFormats(compression);
      // Temporaries of builds that were killed (their pid is in the name) go first.
      collectStale(parent, /^\.tmp-(\d+)-[0-9a-f]+$/);
      tmp = join(parent, `.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
      mkdirSync(tmp);
      try {
        linkSync(blob.path, join(tmp, blob.sha256));
      } catch {
        copyFileSync(blob.path, join(tmp, blob.sha256));
      }
      renameSync(tmp, this.entryOf(diffIdHex, compression)); // fails when another build kept it first
      tmp = undefined;
    } catch {
      // not kept
    } finally {
      if (tmp) rmSync(tmp, { recursive: true, force: true });
    }
  }
}

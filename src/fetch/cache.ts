/**
 * Content-addressed cache: <dir>/blobs/sha256/<hex>. Entries are written to a
 * temporary name in the same folder and renamed into place, so a reader never
 * sees a partial file and two builds sharing the cache at once are safe (the
 * last rename wins, and both wrote the same bytes). Entries are verified on
 * read: a corrupted one is deleted and fetched again.
 */
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { sha256File, sha256Hex, SHA256_HEX } from '../util/digest.js';
import { MkimgError } from '../util/errors.js';

export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, 'mkimg');
  return join(homedir(), '.cache', 'mkimg');
}

export class BlobCache {
  readonly dir: string;
  constructor(dir?: string) {
    this.dir = dir ?? defaultCacheDir();
  }

  pathOf(sha256: string): string {
    if (!SHA256_HEX.test(sha256)) throw new MkimgError('internal', `not a sha256 hex digest: ${sha256}`);
    return join(this.dir, 'blobs', 'sha256', sha256);
  }

  private async ensureDir(): Promise<string> {
    const d = join(this.dir, 'blobs', 'sha256');
    await mkdir(d, { recursive: true });
    return d;
  }

  /** A fresh temp path next to the blobs (same file system, so rename is atomic). */
  async tempPath(): Promise<string> {
    const d = await this.ensureDir();
    return join(d, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  }

  /**
   * The cached path when an entry exists and its bytes hash to `sha256`
   * (and have `size`, when given); a corrupted entry is deleted. Else undefined.
   */
  async lookup(sha256: string, size?: number): Promise<string | undefined> {
    const p = this.pathOf(sha256);
    try {
      const st = await stat(p);
      if (size !== undefined && st.size !== size) {
        await rm(p, { force: true });
        return undefined;
      }
    } catch {
      return undefined;
    }
    const got = await sha256File(p);
    if (got.hex !== sha256) {
      await rm(p, { force: true });
      return undefined;
    }
    return p;
  }

  /** Move a verified temp file into place. The caller checked its digest. */
  async commit(tempPath: string, sha256: string): Promise<string> {
    const p = this.pathOf(sha256);
    await rename(tempPath, p);
    return p;
  }

  /** Store bytes (verified against `sha256` when given). */
  async putBytes(data: Buffer, sha256?: string): Promise<string> {
    const hex = sha256Hex(data);
    if (sha256 && hex !== sha256) throw new MkimgError('internal', `cache put: digest mismatch ${hex} != ${sha256}`);
    const tmp = await this.tempPath();
    await writeFile(tmp, data);
    return this.commit(tmp, hex);
  }

  async discard(tempPath: string): Promise<void> {
    await rm(tempPath, { force: true });
  }
}

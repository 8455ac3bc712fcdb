/**
 * Content-addressed cache: <dir>/blobs/sha256/<hex>. Entries are written to a
 * temporary name in the same folder and renamed into place, so a reader never
 * sees a partial file and two builds sharing the cache at once are safe (the
 * last rename wins, and both wrote the same bytes). Entries are verified on
 * read: a corrupted one is deleted and fetched again.
 */
import { access, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { constants } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { sha256File, sha256Hex, SHA256_HEX } from '../util/digest.js';
import { MkimgError } from '../util/errors.js';
import { asEnvironmentError } from '../util/environment.js';
import { collectStale, removeOnSignal } from '../util/cleanup.js';

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

  private collected = false;

  private async ensureDir(): Promise<string> {
    const d = join(this.dir, 'blobs', 'sha256');
    await ensureCacheFolder(this.dir, d);
    if (!this.collected) {
      // Temporaries of fetches that were killed: their pid is in the name.
      this.collected = true;
      collectStale(d, STALE_TEMP);
    }
    return d;
  }

  /** A fresh temp path next to the blobs (same file system, so rename is atomic); removed if a signal ends the run first. */
  async tempPath(): Promise<string> {
    const d = await this.ensureDir();
    const p = join(d, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
    this.unregister.set(p, removeOnSignal(p));
    return p;
  }

  private readonly unregister = new Map<string, () => void>();

  private done(tempPath: string): void {
    this.unregister.get(tempPath)?.();
    this.unregister.delete(tempPath);
  }

  /**
   * The cached path when an entry exists and its bytes hash to `sha256`
   * (and have `size`, when given); a corrupted entry is deleted. Else undefined.
   */
  async lookup(sha256: string, size?: number): Promise<string | undefined> {
    const p = this.pathOf(sha256);
    try {
      const st = await stat(p);
      if (!st.isFile()) throw notAFile(p, this.dir);
      if (size !== undefined && st.size !== size) {
        await rm(p, { force: true });
        return undefined;
      }
    } catch (e) {
      if (e instanceof MkimgError) throw e;
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
    try {
      await rename(tempPath, p);
    } catch (e) {
      await rm(tempPath, { force: true }).catch(() => {});
      if ((e as NodeJS.ErrnoException).code === 'EISDIR' || (e as NodeJS.ErrnoException).code === 'ENOTEMPTY')
        throw notAFile(p, this.dir);
      throw asEnvironmentError(e, `cannot store ${p} in the cache`);
    } finally {
      this.done(tempPath);
    }
    return p;
  }

  /** Store bytes (verified against `sha256` when given). */
  async putBytes(data: Buffer, sha256?: string): Promise<string> {
    const hex = sha256Hex(data);
    if (sha256 && hex !== sha256) throw new MkimgError('internal', `cache put: digest mismatch ${hex} != ${sha256}`);
    const tmp = await this.tempPath();
    try {
      await writeFile(tmp, data);
    } catch (e) {
      await this.discard(tmp);
      throw asEnvironmentError(e, `cannot write ${tmp} in the cache`);
    }
    return this.commit(tmp, hex);
  }

  async discard(tempPath: string): Promise<void> {
    await rm(tempPath, { force: true });
    this.done(tempPath);
  }
}

/** Temporaries in the cache: `.tmp-<pid>-<random>`. */
const STALE_TEMP = /^\.tmp-(\d+)-/;

function notAFile(p: string, cacheDir: string): MkimgError {
  return new MkimgError('environment', `${p}: the cache holds something other than a file where this entry belongs`, {
    hint: `remove it (the cache folder ${cacheDir} is mkimg's own), or use another cache folder (--cache-dir or XDG_CACHE_HOME)`,
  });
}

/** Create the cache's folder `d` (under `cacheDir`), or say in one line why the cache cannot be used. */
async function ensureCacheFolder(cacheDir: string, d: string): Promise<void> {
  try {
    await mkdir(d, { recursive: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ENOTDIR') {
      throw new MkimgError(
        'environment',
        `the cache folder ${cacheDir} cannot be used: ${(e as NodeJS.ErrnoException).path ?? d} or a folder above it is a file (${code})`,
        {
          hint: 'remove that file, or use another cache folder (--cache-dir or XDG_CACHE_HOME)',
        },
      );
    }
    // mkdir -p reports ENOENT on a read-only file system: ask the deepest
    // folder that exists why it cannot be written.
    let at = d;
    while (
      dirname(at) !== at &&
      !(await stat(at).then(
        () => true,
        () => false,
      ))
    )
      at = dirname(at);
    const why = await access(at, constants.W_OK).then(
      () => e,
      (x: unknown) => x,
    );
    throw asEnvironmentError(why, `the cache folder ${cacheDir} cannot be used (${at})`);
  }
}

/**
 * Decompressed data archives of .debs, so a warm build does not decompress
 * every package again: <cacheDir>/data/sha256/<deb sha256>.<tar sha256>.tar.
 * The key is the sha256 of the .deb the tar came from (only ever one the
 * caller checked against its pin); the second digest is the tar's own, checked
 * on every read, so a corrupted or truncated entry is deleted and reported as
 * a miss, never used. Written like the blobs (temp name in the same folder,
 * then rename), so concurrent builds are safe. The store is best effort: a
 * caller treats any failure to read or write it as a miss.
 */
export class DataCache {
  readonly dir: string;
  constructor(cacheDir: string) {
    this.dir = join(cacheDir, 'data', 'sha256');
  }

  /** The verified tar stored for the .deb with this sha256, or undefined (bad entries are deleted). */
  async get(debSha256: string): Promise<Buffer | undefined> {
    if (!SHA256_HEX.test(debSha256)) throw new MkimgError('internal', `not a sha256 hex digest: ${debSha256}`);
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return undefined;
    }
    for (const n of names.filter((x) => x.startsWith(debSha256 + '.')).sort()) {
      const m = /^([0-9a-f]{64})\.([0-9a-f]{64})\.tar$/.exec(n);
      if (!m || m[1] !== debSha256) continue;
      const p = join(this.dir, n);
      let bytes: Buffer;
      try {
        bytes = await readFile(p);
      } catch {
        continue;
      }
      if (sha256Hex(bytes) === m[2]) return bytes;
      await rm(p, { force: true }).catch(() => {});
    }
    return undefined;
  }

  /**
   * The tar stored for this .deb whose sha256 is `dataSha256`, the digest the
   * (signed) lock pins for the package's data archive: with a pin to check
   * against, a cache entry is as trustworthy as the .deb itself. A damaged
   * entry is deleted and reported as a miss.
   */
  async getPinned(debSha256: string, dataSha256: string): Promise<Buffer | undefined> {
    if (!SHA256_HEX.test(debSha256) || !SHA256_HEX.test(dataSha256))
      throw new MkimgError('internal', 'not a sha256 hex digest');
    const p = join(this.dir, `${debSha256}.${dataSha256}.tar`);
    let bytes: Buffer;
    try {
      bytes = await readFile(p);
    } catch {
      return undefined;
    }
    if (sha256Hex(bytes) === dataSha256) return bytes;
    await rm(p, { force: true }).catch(() => {});
    return undefined;
  }

  /** Store the tar decompressed from the .deb with this (verified) sha256. */
  async put(debSha256: string, data: Buffer | readonly Buffer[]): Promise<void> {
    if (!SHA256_HEX.test(debSha256)) throw new MkimgError('internal', `not a sha256 hex digest: ${debSha256}`);
    const bytes = Buffer.isBuffer(data) ? data : Buffer.concat(data as Buffer[]);
    await mkdir(this.dir, { recursive: true });
    collectStale(this.dir, STALE_TEMP);
    const tmp = join(this.dir, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      await writeFile(tmp, bytes);
      await rename(tmp, join(this.dir, `${debSha256}.${sha256Hex(bytes)}.tar`));
    } catch (e) {
      await rm(tmp, { force: true }).catch(() => {});
      throw e;
    }
  }
}

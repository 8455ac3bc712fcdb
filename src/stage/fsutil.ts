/** Small file-system helpers shared by extraction and files: inputs. */
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fchmodSync,
  lstatSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { lstat } from 'node:fs/promises';
import { MkimgError } from '../util/errors.js';
import type { StageEntry, StagingRoot } from './types.js';
import { joinImage, resolveInIndex, splitPath } from './root.js';

/**
 * Write a stream to a new file (never through a symlink, never over an existing
 * file), hashing while writing. The file is created 0600 and chmod'ed to `mode`
 * afterwards, so the umask never decides anything. On failure the file is removed.
 * The file-system calls are synchronous: one thread-pool round trip per call
 * costs more than the call itself for the small files packages are made of,
 * and nothing else writes the staging root meanwhile.
 */
export async function writeNewFile(
  hostPath: string,
  chunks: AsyncIterable<Buffer>,
  mode: number,
): Promise<{ sha256: string; sha1: string; size: number }> {
  const fd = openSync(
    hostPath,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o600,
  );
  const h = createHash('sha256');
  // sha1 too, in the same pass: the SBOM needs it for every file (SPDX 2.3).
  const h1 = createHash('sha1');
  let size = 0;
  let ok = false;
  try {
    for await (const c of chunks) {
      h.update(c);
      h1.update(c);
      let off = 0;
      while (off < c.length) off += writeSync(fd, c, off, c.length - off);
      size += c.length;
    }
    fchmodSync(fd, mode & 0o777);
    ok = true;
  } finally {
    closeSync(fd);
    if (!ok) rmSync(hostPath, { force: true });
  }
  return { sha256: h.digest('hex'), sha1: h1.digest('hex'), size };
}

/** A temporary name next to `hostPath` (same directory, so rename is atomic). */
export function tempName(hostDir: string): string {
  return `${hostDir}/.mkimg-tmp-${randomBytes(8).toString('hex')}`;
}

export function imageJoin(parent: string, base: string): string {
  return parent === '/' ? '/' + base : parent + '/' + base;
}

export function imageDirname(p: string): string {
  const parts = splitPath(p);
  parts.pop();
  return joinImage(parts);
}

export function imageBasename(p: string): string {
  const parts = splitPath(p);
  return parts[parts.length - 1] ?? '';
}

export async function hostKind(hostPath: string): Promise<'file' | 'dir' | 'symlink' | 'other' | null> {
  try {
    const st = await lstat(hostPath);
    return st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** hostKind, synchronously. */
export function hostKindSync(hostPath: string): 'file' | 'dir' | 'symlink' | 'other' | null {
  const st = lstatSync(hostPath, { throwIfNoEntry: false });
  if (st === undefined) return null;
  return st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
}

/**
 * Make sure the directory `imageDir` exists in the root, resolving symlinks in
 * it within the root, and return its resolved image path. Missing directories
 * are created (mode 0755, root:root) and indexed with `origin`; each created
 * path is reported through `created`. `escape` builds the error thrown when a
 * ".." or a relative link target tries to climb out of the root.
 */
export async function ensureDir(
  root: StagingRoot,
  imageDir: string,
  origin: string,
  created: (path: string) => void,
  escape: (why: string) => MkimgError,
  cache?: Map<string, string>,
): Promise<string> {
  // A cached answer stays true: it names an existing directory reached through
  // existing components, and nothing in a stage run removes those.
  const hit = cache?.get(imageDir);
  if (hit !== undefined) return hit;
  const r = resolveInIndex(root, imageDir, { followLast: true });
  if (r.clamped) {
    throw escape(
      `resolving ${imageDir}${r.hops.length ? ` through the symlink${r.hops.length > 1 ? 's' : ''} ${r.hops.join(', ')}` : ''} climbs above the image root`,
    );
  }
  if (r.notDir) {
    throw new MkimgError('input', `cannot create ${imageDir} in the image: ${r.notDir} is not a directory`, {
      hint: `something earlier put a file or link at ${r.notDir}`,
    });
  }
  if (r.exists) {
    if (r.kind !== 'dir') {
      throw new MkimgError('input', `cannot use ${imageDir} as a directory in the image: ${r.path} is a ${r.kind}`, {
        hint: `something earlier put a ${r.kind} at ${r.path}`,
      });
    }
    cache?.set(imageDir, r.path);
    return r.path;
  }
  // Create the missing tail. Components up to the first missing one are real directories (resolved).
  const parts = splitPath(r.path);
  for (let i = 1; i <= parts.length; i++) {
    const p = joinImage(parts.slice(0, i));
    const k = root.kindAt(p);
    if (k === 'dir') continue;
    if (k !== null) throw new MkimgError('input', `cannot create directory ${p} in the image: a ${k} is in the way`);
    root.layDir(p);
    const e: StageEntry = { path: p, type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0, origin };
    root.entries.set(p, e);
    created(p);
  }
  cache?.set(imageDir, r.path);
  return r.path;
}

/** The first `max` bytes (or fewer) of a file entry's content: readEntryContent without reading what follows. */
export function readEntryHead(rootDir: string, e: StageEntry, max: number): Buffer {
  if (e.size <= max) return readEntryContent(rootDir, e);
  const out = Buffer.allocUnsafe(max);
  const fd = openSync(e.hostPath ?? rootDir + e.path, 'r');
  try {
    let got = 0;
    while (got < max) {
      const n = readSync(fd, out, got, max - got, (e.contentOffset ?? 0) + got);
      if (n === 0) break;
      got += n;
    }
    return out.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

/**
 * The content of a file entry: its hostPath (default: the root's copy), or,
 * for a package indexed without unpacking, `size` bytes at contentOffset
 * inside the package's data tar.
 */
export function readEntryContent(rootDir: string, e: StageEntry): Buffer {
  const host = e.hostPath ?? rootDir + e.path;
  if (e.contentOffset === undefined) return readFileSync(host);
  const out = Buffer.allocUnsafe(e.size);
  const fd = openSync(host, 'r');
  try {
    let got = 0;
    while (got < e.size) {
      const n = readSync(fd, out, got, e.size - got, e.contentOffset + got);
      if (n === 0)
        throw new MkimgError(
          'internal',
          `${e.path}: ${host} ends before the ${e.size} bytes at offset ${e.contentOffset}`,
        );
      got += n;
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

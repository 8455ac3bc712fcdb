/**
 * Small, careful file-system helpers over a StagingRoot: every path is an
 * image path ("/etc/passwd"), resolved through the root's own index (never
 * through the host's symlinks), and every file written here gets a
 * StageEntry whose metadata (mode, owner) comes from the caller, not from the
 * host file system.
 */
import { readEntryContent } from '../stage/fsutil.js';
import { resolveInIndex } from '../stage/root.js';
import { lstatSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import type { StageEntry, StagingRoot } from '../stage/types.js';
import { sha256Hex } from '../util/digest.js';
import { MkimgError } from '../util/errors.js';

/** Normalize an absolute image path: "/a//b/./c/" -> "/a/b/c"; ".." is resolved lexically. */
export function normImagePath(p: string): string {
  const n = posix.normalize('/' + p);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

export function hostPathOf(root: StagingRoot, imagePath: string): string {
  return join(root.dir, normImagePath(imagePath));
}

/**
 * Resolve an image path through the root's symlinks (all components), as the
 * kernel would inside the image, with the staging root's one resolver
 * (stage/root.ts, over the index: the truth in both kinds of root). Returns
 * the final path (which may not exist) or undefined on a symlink loop.
 */
export function resolveInRoot(root: StagingRoot, imagePath: string): string | undefined {
  try {
    return resolveInIndex(root, imagePath, { followLast: true }).path;
  } catch (e) {
    if (e instanceof MkimgError && e.kind === 'input') return undefined; // a symlink loop
    throw e;
  }
}

/** The entry a path finally names after following symlinks (hardlinks are returned as is). */
export function lookupResolved(root: StagingRoot, imagePath: string): StageEntry | undefined {
  const r = resolveInRoot(root, imagePath);
  return r === undefined ? undefined : root.entries.get(r);
}

/** Does the path exist in the image as a regular file (or hardlink to one), following symlinks? */
export function isFileInRoot(root: StagingRoot, imagePath: string): boolean {
  const e = lookupResolved(root, imagePath);
  return e !== undefined && (e.type === 'file' || e.type === 'hardlink');
}

/** Read the content of an image file, following symlinks and hardlinks inside the root. */
export function readRootFile(root: StagingRoot, imagePath: string): Buffer | undefined {
  let e = lookupResolved(root, imagePath);
  if (e && e.type === 'hardlink' && e.linkTarget) e = root.entries.get(normImagePath(e.linkTarget));
  if (!e || e.type !== 'file') return undefined;
  return readEntryContent(root.dir, e);
}

export interface Owner {
  mode: number;
  uid: number;
  gid: number;
}

/**
 * Make sure a directory exists (creating missing components with mode 0755,
 * root-owned, unless `leaf` says otherwise for the last one). Returns the
 * resolved image path of the directory and the paths it created.
 */
export function ensureDir(
  root: StagingRoot,
  imagePath: string,
  origin: string,
  leaf?: Owner,
): { path: string; created: string[] } {
  const created: string[] = [];
  const parts = normImagePath(imagePath).split('/').filter(Boolean);
  let cur = '/';
  for (let i = 0; i < parts.length; i++) {
    const candidate = resolveInRoot(root, cur === '/' ? '/' + parts[i] : cur + '/' + parts[i]);
    if (candidate === undefined) {
      throw new MkimgError('input', `symlink loop under ${imagePath} in the staging root`, {
        hint: 'a package or files: input ships a looping symlink',
      });
    }
    const e = root.entries.get(candidate);
    if (e) {
      if (e.type !== 'dir') {
        throw new MkimgError(
          'input',
          `cannot create ${imagePath}: ${candidate} exists and is not a directory (from ${e.origin})`,
          {
            hint: 'remove the conflicting file from the packages or files: inputs',
          },
        );
      }
    } else {
      const isLeaf = i === parts.length - 1;
      const own = isLeaf && leaf ? leaf : { mode: 0o755, uid: 0, gid: 0 };
      mkdirSync(hostPathOf(root, candidate), { recursive: true });
      root.entries.set(candidate, {
        path: candidate,
        type: 'dir',
        mode: own.mode,
        uid: own.uid,
        gid: own.gid,
        size: 0,
        origin,
      });
      created.push(candidate);
    }
    cur = candidate;
  }
  return { path: cur, created };
}

function clearHostPath(hp: string): void {
  try {
    const st = lstatSync(hp);
    if (st.isDirectory()) throw new MkimgError('input', `cannot write ${hp}: a directory is in the way`);
    rmSync(hp, { force: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/**
 * Write a generated regular file. The parent is resolved through the root's
 * symlinks; an existing file or symlink at the final path is replaced (never
 * written through). Returns the image path written and any directories created.
 */
export function writeRootFile(
  root: StagingRoot,
  imagePath: string,
  content: Buffer | string,
  origin: string,
  own: Owner = { mode: 0o644, uid: 0, gid: 0 },
): { path: string; created: string[] } {
  const p = normImagePath(imagePath);
  const { path: parent, created } = ensureDir(root, posix.dirname(p), origin);
  const final = parent === '/' ? '/' + posix.basename(p) : parent + '/' + posix.basename(p);
  const existing = root.entries.get(final);
  if (existing && existing.type === 'dir') {
    throw new MkimgError('input', `cannot write ${final}: it is a directory (from ${existing.origin})`);
  }
  const bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
  const hp = hostPathOf(root, final);
  // An index-only root has its directories in the index alone: lay the (resolved) parent down first.
  root.hostDirFor(parent);
  clearHostPath(hp);
  writeFileSync(hp, bytes, { mode: 0o644 });
  root.entries.set(final, {
    path: final,
    type: 'file',
    mode: own.mode,
    uid: own.uid,
    gid: own.gid,
    size: bytes.length,
    hostPath: hp,
    origin,
    sha256: sha256Hex(bytes),
  });
  return { path: final, created };
}

export function writeRootSymlink(
  root: StagingRoot,
  imagePath: string,
  target: string,
  origin: string,
): { path: string; created: string[] } {
  const p = normImagePath(imagePath);
  const { path: parent, created } = ensureDir(root, posix.dirname(p), origin);
  const final = parent === '/' ? '/' + posix.basename(p) : parent + '/' + posix.basename(p);
  const existing = root.entries.get(final);
  if (existing && existing.type === 'dir') {
    throw new MkimgError('input', `cannot create symlink ${final}: it is a directory (from ${existing.origin})`);
  }
  const hp = hostPathOf(root, final);
  // An index-only root has its directories in the index alone: lay the (resolved) parent down first.
  root.hostDirFor(parent);
  clearHostPath(hp);
  symlinkSync(target, hp);
  root.entries.set(final, {
    path: final,
    type: 'symlink',
    mode: 0o777,
    uid: 0,
    gid: 0,
    size: 0,
    linkTarget: target,
    origin,
  });
  return { path: final, created };
}

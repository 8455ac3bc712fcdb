/**
 * The staging root: a host directory plus the entry index (see types.ts).
 * createStagingRoot lays down Debian 12's merged-/usr layout first, so files
 * that packages ship under /bin, /sbin, /lib, /lib64 land below /usr, as they
 * do on an installed Debian 12 system.
 *
 * resolveInRoot resolves an image path inside the root as if the root were "/":
 * symlinks (absolute or relative) are followed within the root, ".." at the
 * root stays at the root, and the host outside the root is never looked at.
 */
import { chmodSync, copyFileSync, linkSync, lstatSync, mkdirSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import { mkdir, readdir, symlink, chmod } from 'node:fs/promises';
import { MkimgError } from '../util/errors.js';
import type { PathKind, Resolved, StagedPackage, StageEntry, StagingRoot } from './types.js';
import { imageParent } from '../util/path-order.js';

export const MERGED_USR_DIRS = ['/usr', '/usr/bin', '/usr/lib', '/usr/lib64', '/usr/sbin'] as const;
export const MERGED_USR_LINKS: ReadonlyArray<readonly [string, string]> = [
  ['/bin', 'usr/bin'],
  ['/lib', 'usr/lib'],
  ['/lib64', 'usr/lib64'],
  ['/sbin', 'usr/sbin'],
];

/** Symlink hops allowed while resolving one path (Linux's MAXSYMLINKS). */
export const MAX_SYMLINK_HOPS = 40;

/** A root laid down on disk: the index, and every entry under `dir` too. */
class DiskRoot implements StagingRoot {
  readonly kind = 'disk';
  readonly entries = new Map<string, StageEntry>();
  readonly packages: StagedPackage[] = [];
  readonly lowerDirs: readonly string[] = [];
  constructor(readonly dir: string) {}
  /** Resolved in the index, which mirrors the disk (everything laid here goes through it): no lstat per component. */
  resolve(imagePath: string, opts: { followLast?: boolean } = {}): Resolved {
    return resolveInIndex(this, imagePath, opts);
  }
  kindAt(path: string): PathKind {
    return hostKindOf(this.dir + path);
  }
  layDir(path: string, mode = 0o755): void {
    mkdirSync(this.dir + path, { mode: 0o755 });
    chmodSync(this.dir + path, mode);
  }
  layHardlink(path: string, existing: string): boolean {
    if (!lstatSync(this.dir + existing).isFile()) return false;
    linkSync(this.dir + existing, this.dir + path);
    return true;
  }
  laySymlink(path: string, target: string): void {
    symlinkSync(target, this.dir + path);
  }
  remove(path: string): void {
    rmSync(this.dir + path, { force: true });
  }
  hostDirFor(_parent: string): void {}
  hostFile(path: string): string {
    return this.entries.get(path)?.hostPath ?? this.dir + path;
  }
}

/**
 * A root over a package root that is never written (one kept in the cache,
 * shared by builds): the index holds both; `dir` holds only what this build
 * adds (files: inputs, generated files, the directories they need, with the
 * index's modes), and the sandbox runs checks in the read-only overlay of
 * `dir` on the package root. The index is the truth, as in an index root.
 */
class LayeredRoot implements StagingRoot {
  readonly kind = 'disk';
  readonly entries = new Map<string, StageEntry>();
  readonly packages: StagedPackage[] = [];
  readonly lowerDirs: readonly string[];
  /** Directories present under `dir`. */
  private readonly made = new Set<string>(['/']);
  constructor(
    readonly dir: string,
    lower: string,
  ) {
    this.lowerDirs = [lower];
  }
  resolve(imagePath: string, opts: { followLast?: boolean } = {}): Resolved {
    return resolveInIndex(this, imagePath, opts);
  }
  kindAt(path: string): PathKind {
    return kindInIndex(this, path);
  }
  layDir(path: string, mode = 0o755): void {
    this.hostDirFor(imageParent(path));
    mkdirSync(this.dir + path, { mode: 0o700 });
    chmodSync(this.dir + path, mode);
    this.made.add(path);
  }
  /** A copy, not a link: the package root's files are shared with other builds and never touched. */
  layHardlink(path: string, existing: string): boolean {
    if (this.kindAt(existing) !== 'file') return false;
    this.hostDirFor(imageParent(path));
    copyFileSync(this.hostFile(existing), this.dir + path);
    return true;
  }
  laySymlink(path: string, target: string): void {
    this.hostDirFor(imageParent(path));
    symlinkSync(target, this.dir + path);
  }
  /** Only what this build wrote can be removed: a package file stays below what replaces it. */
  remove(path: string): void {
    rmSync(this.dir + path, { force: true });
  }
  /** The directory and its parents under `dir`, each with the mode the index gives it (the overlay shows the topmost's). */
  hostDirFor(parent: string): void {
    if (this.made.has(parent)) return;
    this.hostDirFor(imageParent(parent));
    try {
      mkdirSync(this.dir + parent, { mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    chmodSync(this.dir + parent, (this.entries.get(parent)?.mode ?? 0o755) & 0o7777);
    this.made.add(parent);
  }
  hostFile(path: string): string {
    const e = this.entries.get(path);
    return e?.hostPath ?? (e?.type === 'hardlink' ? this.lowerDirs[0] + path : this.dir + path);
  }
}

/** What the index says is at a path (a hardlink is a file): for roots whose index is the truth. */
function kindInIndex(root: StagingRoot, path: string): PathKind {
  const e = root.entries.get(path);
  return e === undefined ? null : e.type === 'hardlink' ? 'file' : e.type;
}

/** A root held in its index alone; only generated files are written under `dir`. */
class IndexRoot implements StagingRoot {
  readonly kind = 'index';
  readonly entries = new Map<string, StageEntry>();
  readonly packages: StagedPackage[] = [];
  readonly lowerDirs: readonly string[] = [];
  constructor(readonly dir: string) {}
  resolve(imagePath: string, opts: { followLast?: boolean } = {}): Resolved {
    return resolveInIndex(this, imagePath, opts);
  }
  kindAt(path: string): PathKind {
    return kindInIndex(this, path);
  }
  layDir(_path: string, _mode?: number): void {}
  layHardlink(_path: string, existing: string): boolean {
    return this.entries.get(existing)?.type === 'file';
  }
  laySymlink(_path: string, _target: string): void {}
  remove(_path: string): void {}
  hostDirFor(parent: string): void {
    mkdirSync(this.dir + parent, { recursive: true });
  }
  hostFile(path: string): string {
    return this.entries.get(path)?.hostPath ?? this.dir + path;
  }
}

/** A root over a host directory that already holds its files (the caller fills the index). */
export function stagingRootAt(dir: string, kind: 'disk' | 'index' = 'disk'): StagingRoot {
  return kind === 'index' ? new IndexRoot(dir) : new DiskRoot(dir);
}

/**
 * A root whose packages are the package root at `lower` (its entries, with
 * hostPath under `lower`, and packages given): `dir` is made empty, for what
 * this build adds.
 */
export function layeredStagingRoot(
  dir: string,
  lower: { dir: string; entries: Iterable<StageEntry>; packages: StagedPackage[] },
): StagingRoot {
  mkdirSync(dir, { mode: 0o700 });
  chmodSync(dir, 0o755);
  const root = new LayeredRoot(dir, lower.dir);
  for (const e of lower.entries) root.entries.set(e.path, e);
  root.packages.push(...lower.packages);
  return root;
}

/**
 * An index root whose packages are indexed in the data archives of `packages`
 * (entries with hostPath and contentOffset into them): `dir` is made empty,
 * for the files this build generates.
 */
export function indexedStagingRoot(
  dir: string,
  packages: { entries: Iterable<StageEntry>; packages: StagedPackage[] },
): StagingRoot {
  mkdirSync(dir, { mode: 0o700 });
  chmodSync(dir, 0o755);
  const root = new IndexRoot(dir);
  for (const e of packages.entries) root.entries.set(e.path, e);
  root.packages.push(...packages.packages);
  return root;
}

export async function createStagingRoot(dir: string, opts: { indexOnly?: boolean } = {}): Promise<StagingRoot> {
  await mkdir(dir, { recursive: true });
  const existing = await readdir(dir);
  if (existing.length > 0) {
    throw new MkimgError('usage', `staging directory ${dir} is not empty`, {
      hint: 'use a fresh directory for each build',
    });
  }
  await chmod(dir, 0o755);
  const root = stagingRootAt(dir, opts.indexOnly ? 'index' : 'disk');
  // The merged-/usr layout is on disk in both kinds: generated files are written below it.
  for (const d of MERGED_USR_DIRS) {
    await mkdir(dir + d, { mode: 0o755 });
    await chmod(dir + d, 0o755);
    root.entries.set(d, { path: d, type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0, origin: 'layout' });
  }
  for (const [link, target] of MERGED_USR_LINKS) {
    await symlink(target, dir + link);
    root.entries.set(link, {
      path: link,
      type: 'symlink',
      mode: 0o777,
      uid: 0,
      gid: 0,
      size: 0,
      linkTarget: target,
      origin: 'layout',
    });
  }
  return root;
}

export type HostKind = 'file' | 'dir' | 'symlink' | 'other';
export type { Resolved };

function hostKindOf(hostPath: string): PathKind {
  try {
    return kindOf(lstatSync(hostPath));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw e;
  }
}

function lookOnDisk(dir: string, here: string): Look {
  let st;
  try {
    st = lstatSync(dir + here);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'missing';
    if (code === 'ENOTDIR') return 'notdir';
    throw e;
  }
  const kind = kindOf(st);
  return kind === 'symlink' ? { kind, target: readlinkSync(dir + here) } : { kind };
}

/** Split an image path into components (empty and "." dropped; ".." kept). */
export function splitPath(p: string): string[] {
  return p.split('/').filter((c) => c !== '' && c !== '.');
}

export function joinImage(parts: string[]): string {
  return '/' + parts.join('/');
}

function kindOf(st: import('node:fs').Stats): HostKind {
  return st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
}

/** Resolve an image path in a root, or in a host directory laid out as one (the minimizer's proof roots). */
export async function resolveInRoot(
  root: StagingRoot | string,
  imagePath: string,
  opts: { followLast?: boolean } = {},
): Promise<Resolved> {
  if (typeof root !== 'string') return root.resolve(imagePath, opts);
  // Synchronous calls: a thread-pool round trip per component costs more than the lstat.
  return resolveWalk(imagePath, opts.followLast ?? true, (here) => lookOnDisk(root, here));
}

/**
 * resolveInRoot for an index-only root: the same walk, with the index standing
 * in for lstat/readlink (it holds every path mkimg put in the root, and
 * nothing else writes there). Same answers, same errors.
 */
export function resolveInIndex(root: StagingRoot, imagePath: string, opts: { followLast?: boolean } = {}): Resolved {
  return resolveWalk(imagePath, opts.followLast ?? true, (here) => {
    const e = root.entries.get(here);
    if (e === undefined) return 'missing';
    return e.type === 'symlink'
      ? { kind: 'symlink', target: e.linkTarget ?? '' }
      : { kind: e.type === 'hardlink' ? 'file' : e.type };
  });
}

/** What is at an existing image path (a symlink with its target), or why nothing is. */
type Look = { kind: HostKind; target?: string } | 'missing' | 'notdir';

/** The resolution walk of resolveInRoot, over any way of looking a path up. */
function resolveWalk(imagePath: string, followLast: boolean, look: (here: string) => Look): Resolved {
  const hops: string[] = [];
  let clamped = false;
  const cur: string[] = [];
  let todo = splitPath(imagePath);
  let kind: HostKind | undefined = 'dir'; // the root
  let missing = false;
  let notDir: string | undefined;

  while (todo.length > 0) {
    const c = todo.shift()!;
    if (c === '..') {
      if (cur.length === 0) clamped = true;
      else cur.pop();
      kind = missing || notDir ? undefined : 'dir';
      continue;
    }
    cur.push(c);
    if (missing || notDir) {
      kind = undefined;
      continue;
    }
    if (kind !== 'dir') {
      // the previous component exists but is not a directory
      notDir = joinImage(cur.slice(0, -1));
      kind = undefined;
      continue;
    }
    const here = joinImage(cur);
    const found = look(here);
    if (found === 'missing') {
      missing = true;
      kind = undefined;
      continue;
    }
    if (found === 'notdir') {
      notDir = joinImage(cur.slice(0, -1));
      kind = undefined;
      continue;
    }
    kind = found.kind;
    if (kind === 'symlink' && (todo.length > 0 || followLast)) {
      hops.push(here);
      if (hops.length > MAX_SYMLINK_HOPS) {
        throw new MkimgError(
          'input',
          `too many levels of symbolic links resolving ${imagePath} in the image (more than ${MAX_SYMLINK_HOPS} hops)`,
          {
            hint: `symlinks followed: ${hops.slice(0, 5).join(' -> ')} ...; fix the symlink loop`,
          },
        );
      }
      const target = found.target ?? '';
      cur.pop();
      if (target.startsWith('/')) cur.length = 0;
      todo = [...splitPath(target), ...todo];
      kind = 'dir'; // the directory the link sits in (or the root)
    }
  }
  const exists = !missing && !notDir && kind !== undefined;
  return {
    path: joinImage(cur),
    hops,
    exists,
    kind: exists ? kind : undefined,
    clamped,
    ...(notDir ? { notDir } : {}),
  };
}

/** Sorted index entries (UTF-16 code unit order of paths, byte order for ASCII): the order every consumer should walk. */
export function sortedEntries(root: StagingRoot): StageEntry[] {
  return [...root.entries.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * The staged closure kept in the cache: after a build unpacks its packages
 * into a disk root, the root (its files, hard-linked, and its index) is kept
 * under a key naming exactly those packages; a later build with the same
 * packages clones it instead of unpacking again, then puts files: inputs and
 * generated files on top. Nothing in a staging root is ever written in place
 * (files are replaced by unlink and create, the sandbox mounts the root
 * read-only), so the cached files are shared, never changed.
 *
 * A cached root is used only when it is whole and unchanged: it is renamed
 * into place only once complete (a kill leaves a temporary that is collected
 * later), and on every reuse each file's size and sha256 are checked against
 * the index, each link and directory against its entry; anything else
 * deletes the entry and the build unpacks as if it were not there. Hard links
 * need the cache and the work folder on one file system; otherwise nothing
 * is cached.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readlinkSync,
  readSync,
  renameSync,
  rmSync,
  writeFileSync,
  chmodSync,
} from 'node:fs';
import { join } from 'node:path';
import { canonicalJson } from '../util/canonical-json.js';
import { sha256Hex } from '../util/digest.js';
import { collectStale } from '../util/cleanup.js';
import type { StagedPackage, StageEntry, StagingRoot } from './types.js';

/** Bumped when what unpacking puts in a root changes. */
const ROOT_FORMAT = 1;

/** The key of a package closure: architecture, the packages in unpack order and their pins, the format. */
export function packageRootKey(
  architecture: string,
  packages: { name: string; sha256: string; dataSha256?: string }[],
): string {
  return sha256Hex(
    canonicalJson({
      format: ROOT_FORMAT,
      architecture,
      packages: packages.map((p) => [p.name, p.sha256, p.dataSha256 ?? null]),
    }),
  );
}

/** An index entry as JSON: no host path (the file is at the same path under the cached root), the capability in base64. */
type SavedEntry = Omit<StageEntry, 'hostPath' | 'capability'> & { capability?: string };

interface SavedRoot {
  format: number;
  entries: SavedEntry[];
  packages: StagedPackage[];
}

function toSaved(e: StageEntry): SavedEntry {
  const { hostPath: _h, capability, ...rest } = e;
  return capability ? { ...rest, capability: capability.toString('base64') } : rest;
}

function fromSaved(e: SavedEntry, rootDir: string): StageEntry {
  const { capability, ...rest } = e;
  return {
    ...rest,
    ...(capability !== undefined ? { capability: Buffer.from(capability, 'base64') } : {}),
    ...(e.type === 'file' ? { hostPath: rootDir + e.path } : {}),
  };
}

function sha256OfFile(path: string, buf: Buffer): string {
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

export class PackageRootCache {
  private readonly dir: string;
  constructor(cacheDir: string) {
    this.dir = join(cacheDir, 'roots');
  }

  /**
   * Clone the cached root of `key` into `root` (a fresh disk root holding the
   * layout only) and fill its index. False when there is no whole, unchanged
   * entry (a damaged one is deleted): then nothing was put in `root`.
   */
  restore(key: string, root: StagingRoot): boolean {
    const base = join(this.dir, key);
    let saved: SavedRoot;
    try {
      saved = JSON.parse(readFileSync(join(base, 'index.json'), 'utf8')) as SavedRoot;
    } catch {
      // No entry, or one without a readable index (damaged): dropped, so this build's can take its place.
      rmSync(base, { recursive: true, force: true });
      return false;
    }
    const from = join(base, 'root');
    const dirModes = new Map<string, number>();
    if (saved.format !== ROOT_FORMAT || !this.intact(from, saved.entries, dirModes)) {
      rmSync(base, { recursive: true, force: true });
      return false;
    }
    for (const e of saved.entries) {
      if (root.entries.has(e.path) || e.path === '/') continue; // the layout
      const dst = root.dir + e.path;
      if (e.type === 'dir') {
        mkdirSync(dst);
        chmodSync(dst, dirModes.get(e.path)!);
      } else linkSync(from + e.path, dst); // a symlink too: a link to its (immutable) inode costs a tenth of symlink()
    }
    for (const e of saved.entries) if (!root.entries.has(e.path)) root.entries.set(e.path, fromSaved(e, root.dir));
    root.packages.push(...saved.packages);
    return true;
  }

  /**
   * Every entry as the index says: files of their size and sha256, links to their targets,
   * directories (their modes on disk noted in `dirModes`, for the clone).
   */
  private intact(from: string, entries: SavedEntry[], dirModes: Map<string, number>): boolean {
    const buf = Buffer.allocUnsafe(1 << 20);
    try {
      for (const e of entries) {
        const st = lstatSync(from + e.path);
        if (e.type === 'dir' && !st.isDirectory()) return false;
        if (e.type === 'dir') dirModes.set(e.path, st.mode & 0o7777);
        if (e.type === 'symlink' && (!st.isSymbolicLink() || readlinkSync(from + e.path) !== e.linkTarget))
          return false;
        if (e.type === 'hardlink' && !st.isFile()) return false;
        if (e.type === 'file') {
          if (!st.isFile() || st.size !== e.size || !e.sha256) return false;
          if (sha256OfFile(from + e.path, buf) !== e.sha256) return false;
        }
      }
      return true;
    } catch {
      return false;
    }
  }

  /** Keep what `root` holds now (its packages, just unpacked) under `key`; best effort. */
  save(key: string, root: StagingRoot): void {
    const base = join(this.dir, key);
    let tmp: string | undefined;
    try {
      mkdirSync(this.dir, { recursive: true });
      // Temporaries of builds that were killed while filling (their pid is in the name).
      collectStale(this.dir, /^\.tmp-(\d+)-[0-9a-f]+$/);
      tmp = join(this.dir, `.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
      mkdirSync(join(tmp, 'root'), { recursive: true });
      const to = join(tmp, 'root');
      const entries = [...root.entries.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
      for (const e of entries) {
        if (e.path === '/') continue;
        const dst = to + e.path;
        if (e.type === 'dir') {
          mkdirSync(dst);
          chmodSync(dst, lstatSync(root.dir + e.path).mode & 0o7777);
        } else linkSync(root.dir + e.path, dst);
      }
      const saved: SavedRoot = {
        format: ROOT_FORMAT,
        entries: entries.filter((e) => e.path !== '/').map(toSaved),
        packages: root.packages,
      };
      writeFileSync(join(tmp, 'index.json'), JSON.stringify(saved));
      renameSync(tmp, base);
      tmp = undefined;
    } catch {
      // Not kept (another build kept it first, another file system, a full disk): the next build unpacks.
    } finally {
      if (tmp) rmSync(tmp, { recursive: true, force: true });
    }
  }
}

/**
 * The package root kept in the cache: the packages of a lock, unpacked once
 * into a directory under a key naming exactly those packages, with its index.
 * Builds never copy or write it: the checks run in the read-only overlay of a
 * build's own files on it, and the layers read its files where they are.
 *
 * A cached root is used only when it is whole and unchanged: it is filled in
 * a temporary and renamed into place once complete (a kill leaves the
 * temporary, collected later), and when it is filled each entry's inode
 * number, size, mode, mtime and ctime are recorded. On every reuse each entry
 * is lstat'ed: any change to a file changes its ctime (the kernel sets it,
 * nobody can set it back), so equal records mean unchanged bytes without
 * reading them. Any difference and every file's size and sha256 are checked
 * against the index (the records refreshed when they all match); a root that
 * fails that is removed and the build unpacks as if it were not there.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  readSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { canonicalJson } from '../util/canonical-json.js';
import { sha256Hex } from '../util/digest.js';
import { collectStale } from '../util/cleanup.js';
import { createStagingRoot } from './root.js';
import type { StagedPackage, StageEntry, StagingRoot } from './types.js';

/** Bumped when what unpacking puts in a root changes. */
const ROOT_FORMAT = 3;

/**
 * What a cached root holds: `disk`, the packages unpacked (checks run over
 * it); `index`, their data archives as decompressed and the index into them
 * (a `minimize: false` build reads files out of the archives, unpacking none).
 */
export type RootKind = 'disk' | 'index';

/**
 * The key of a package closure: architecture, the packages in unpack order and their pins, the
 * format (and kind, and whether byte code was generated: a root without it is another root).
 */
export function packageRootKey(
  architecture: string,
  packages: { name: string; sha256: string; dataSha256?: string }[],
  kind: RootKind = 'disk',
  opts: { bytecode?: boolean } = {},
): string {
  return sha256Hex(
    canonicalJson({
      format: ROOT_FORMAT,
      architecture,
      packages: packages.map((p) => [p.name, p.sha256, p.dataSha256 ?? null]),
      ...(kind === 'index' ? { kind } : {}),
      ...(opts.bytecode === false ? { bytecode: false } : {}),
    }),
  );
}

/**
 * An index entry as JSON: no host path (the file is at the same path under the
 * cached root), the capability in base64, and what lstat said of it when it
 * was recorded: [ino, size, mode, mtimeMs, ctimeMs].
 */
type SavedEntry = Omit<StageEntry, 'hostPath' | 'capability'> & {
  capability?: string;
  stat?: number[];
  /** Index kind: the data archive holding the content, relative to the entry's folder (at contentOffset). */
  data?: string;
};

interface SavedRoot {
  format: number;
  entries: SavedEntry[];
  packages: StagedPackage[];
  /** Index kind: each data archive and generated file (relative path) and what lstat said of it when it was written. */
  archives?: Record<string, number[]>;
}

/** A package root on disk: its directory, its index entries (files' hostPath under it), its packages. */
export interface PackageRoot {
  dir: string;
  entries: StageEntry[];
  packages: StagedPackage[];
  /**
   * Facts a build learnt of this root's files, kept beside it in the cache
   * (a name → JSON file), when the root is a cached one: as trustworthy as the
   * root itself (its files are checked unchanged on every reuse).
   */
  facts?: RootFacts;
}

/** Derived facts about a cached root's files, in files beside its index. */
export class RootFacts {
  constructor(private readonly base: string) {}
  /** The facts stored under `name`; undefined when none or unreadable. */
  read(name: string): unknown {
    try {
      return JSON.parse(readFileSync(join(this.base, `${name}.json`), 'utf8'));
    } catch {
      return undefined;
    }
  }
  /** Store facts under `name` (whole or not at all); best effort. */
  write(name: string, value: unknown): void {
    const tmp = join(this.base, `.${name}-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      writeFileSync(tmp, JSON.stringify(value));
      renameSync(tmp, join(this.base, `${name}.json`));
    } catch {
      rmSync(tmp, { force: true });
    }
  }
}

/** A root just unpacked, as a package root (its files' hostPath under it). */
export function packageRootOf(root: StagingRoot): PackageRoot {
  const entries = [...root.entries.values()].map((e) =>
    e.type === 'file' && e.hostPath === undefined ? { ...e, hostPath: root.dir + e.path } : e,
  );
  return { dir: root.dir, entries, packages: root.packages };
}

function statRecord(path: string): number[] {
  const st = lstatSync(path);
  return [st.ino, st.size, st.mode, st.mtimeMs, st.ctimeMs];
}

function sameRecord(a: number[] | undefined, b: number[]): boolean {
  return a !== undefined && a.length === b.length && a.every((v, i) => v === b[i]);
}

function toSaved(e: StageEntry, stat: number[] | undefined, base: string): SavedEntry {
  const { hostPath, contentOffset, capability, ...rest } = e;
  const out: SavedEntry = { ...rest, ...(capability ? { capability: capability.toString('base64') } : {}) };
  if (stat) out.stat = stat;
  if (contentOffset !== undefined && hostPath?.startsWith(base + '/')) {
    out.data = hostPath.slice(base.length + 1);
    out.contentOffset = contentOffset;
  }
  return out;
}

function fromSaved(e: SavedEntry, base: string): StageEntry {
  const { capability, stat: _s, data, ...rest } = e;
  return {
    ...rest,
    ...(capability !== undefined ? { capability: Buffer.from(capability, 'base64') } : {}),
    ...(data !== undefined
      ? { hostPath: join(base, data) }
      : e.type === 'file'
        ? { hostPath: `${base}/root${e.path}` }
        : {}),
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
  constructor(
    cacheDir: string,
    private readonly kind: RootKind = 'disk',
  ) {
    this.dir = join(cacheDir, 'roots');
  }

  /**
   * The cached root of `key` when there is a whole, unchanged one (a damaged
   * one is removed); undefined otherwise.
   */
  open(key: string): PackageRoot | undefined {
    const base = join(this.dir, key);
    let saved: SavedRoot;
    try {
      saved = JSON.parse(readFileSync(join(base, 'index.json'), 'utf8')) as SavedRoot;
    } catch {
      // No entry, or one without a readable index (damaged): dropped, so this build's can take its place.
      this.discard(base);
      return undefined;
    }
    const from = join(base, 'root');
    if (saved.format !== ROOT_FORMAT || !Array.isArray(saved.entries)) {
      this.discard(base);
      return undefined;
    }
    if (this.kind === 'index') {
      // The archives as written (a change to one changes its record): else unpacked again.
      if (!this.archivesUnchanged(base, saved.archives)) {
        this.discard(base);
        return undefined;
      }
    } else if (!this.unchanged(from, saved.entries)) {
      if (!this.intact(from, saved.entries)) {
        this.discard(base);
        return undefined;
      }
      this.refresh(base, saved);
    }
    return {
      dir: from,
      entries: saved.entries.map((e) => fromSaved(e, base)),
      packages: saved.packages,
      facts: new RootFacts(base),
    };
  }

  /**
   * Unpack (through `unpack`) into a new root and keep it under `key`. The
   * returned root is the cached one, or, when it cannot be kept (another
   * build kept the same first, a full disk), this build's own: `release`
   * removes it once the build is done.
   */
  async fill(
    key: string,
    unpack: (root: StagingRoot) => Promise<void>,
  ): Promise<{ root: PackageRoot; release: () => void }> {
    mkdirSync(this.dir, { recursive: true });
    // Temporaries of builds that were killed while filling (their pid is in the name).
    collectStale(this.dir, /^\.tmp-(\d+)-[0-9a-f]+$/);
    this.dropOlderFormats();
    const tmp = join(this.dir, `.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
    mkdirSync(tmp);
    try {
      const index = this.kind === 'index';
      const root = await createStagingRoot(join(tmp, 'root'), { indexOnly: index });
      await unpack(root);
      const entries = [...root.entries.values()]
        .filter((e) => e.path !== '/')
        .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
      const saved: SavedRoot = {
        format: ROOT_FORMAT,
        entries: entries.map((e) => toSaved(e, index ? undefined : statRecord(root.dir + e.path), tmp)),
        packages: root.packages,
      };
      if (index) {
        // The data archives, and the files generated beside them (Python byte code) under root/.
        const archives = [
          ...new Set(
            saved.entries.flatMap((e) =>
              e.data !== undefined ? [e.data] : e.type === 'file' ? [`root${e.path}`] : [],
            ),
          ),
        ].sort();
        saved.archives = Object.fromEntries(archives.map((a) => [a, statRecord(join(tmp, a))]));
      }
      writeFileSync(join(tmp, 'index.json'), JSON.stringify(saved));
      const base = join(this.dir, key);
      let at = tmp;
      try {
        renameSync(tmp, base);
        at = base;
      } catch {
        // Kept by another build first (or not renamable): this build uses its own, then removes it.
      }
      const dir = join(at, 'root');
      return {
        root: {
          dir,
          entries: saved.entries.map((e) => fromSaved(e, at)),
          packages: saved.packages,
          ...(at === base ? { facts: new RootFacts(base) } : {}),
        },
        release: at === tmp ? () => rmSync(tmp, { recursive: true, force: true }) : () => {},
      };
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
  }

  /** Every data archive's lstat as recorded when it was written. */
  private archivesUnchanged(base: string, archives: Record<string, number[]> | undefined): boolean {
    if (typeof archives !== 'object' || archives === null) return false;
    try {
      for (const [rel, stat] of Object.entries(archives)) {
        if (rel.split('/').includes('..') || !sameRecord(stat, statRecord(join(base, rel)))) return false;
      }
      return true;
    } catch {
      return false;
    }
  }

  /** Every entry's lstat as recorded: nothing was changed, added or removed in it since. */
  private unchanged(from: string, entries: SavedEntry[]): boolean {
    try {
      for (const e of entries) if (!sameRecord(e.stat, statRecord(from + e.path))) return false;
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Every entry as the index says: files of their size and sha256, links to
   * their targets, directories as directories.
   */
  private intact(from: string, entries: SavedEntry[]): boolean {
    const buf = Buffer.allocUnsafe(1 << 20);
    try {
      for (const e of entries) {
        const st = lstatSync(from + e.path);
        if (e.type === 'dir' && !st.isDirectory()) return false;
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

  /**
   * New records for a root whose bytes were just checked (its inodes changed
   * without its content: a copy of the cache, a link made by hand). Not when
   * some ctime is from the last two seconds: a change in the same clock tick
   * could leave the same record, so the next build checks the bytes again.
   */
  private refresh(base: string, saved: SavedRoot): void {
    const from = join(base, 'root');
    try {
      const recent = Date.now() - 2000;
      const entries = saved.entries.map((e) => ({ ...e, stat: statRecord(from + e.path) }));
      if (entries.some((e) => e.stat[4]! > recent)) return;
      const tmp = join(base, `.index-${process.pid}-${randomBytes(4).toString('hex')}`);
      writeFileSync(tmp, JSON.stringify({ ...saved, entries }));
      renameSync(tmp, join(base, 'index.json'));
    } catch {
      // Not refreshed: the next build checks the bytes again.
    }
  }

  /**
   * Roots an older mkimg kept (their index says an older format) are under keys no build of this one
   * asks for: removed when a root is filled, as the layer cache drops its older formats.
   */
  private dropOlderFormats(): void {
    for (const name of readdirSync(this.dir)) {
      if (!/^[0-9a-f]{64}$/.test(name)) continue;
      let head = '';
      try {
        const fd = openSync(join(this.dir, name, 'index.json'), 'r');
        try {
          const buf = Buffer.alloc(32);
          head = buf.subarray(0, readSync(fd, buf, 0, 32, 0)).toString('latin1');
        } finally {
          closeSync(fd);
        }
      } catch {
        continue; // a damaged entry is dropped by the build that asks for it
      }
      const format = /^\{"format":(\d+)[,}]/.exec(head)?.[1];
      if (format !== undefined && Number(format) < ROOT_FORMAT) this.discard(join(this.dir, name));
    }
  }

  /** Out of the way at once (a rename), then removed: a build that finds it damaged never uses it. */
  private discard(base: string): void {
    const away = join(this.dir, `.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      renameSync(base, away);
    } catch {
      return;
    }
    rmSync(away, { recursive: true, force: true });
  }
}

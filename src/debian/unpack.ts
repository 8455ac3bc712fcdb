/**
 * unpackDeb: put one verified .deb's data archive into the staging root
 * (prepareDeb + unpackPrepared; unpackDebs pipelines a list of them).
 *
 * Safety rules (a package is untrusted input until proven otherwise):
 * - the .deb's sha256 is checked before anything is written;
 * - maintainer scripts are never run (they are not even extracted);
 * - names with ".." components or absolute names are refused;
 * - parent directories are resolved inside the root, through the index (the
 *   index holds every path mkimg put in the root, nothing else writes there,
 *   and it costs no lstat per component), so
 *   /bin/x lands in /usr/bin/x through the merged-/usr link, and a path that
 *   would climb out of the root through a symlink is refused;
 * - hardlinks must point at a file this package already extracted;
 * - device nodes, fifos and unknown entry types are refused;
 * - on disk, files get `mode & 0777` (never setuid on the host), directories at
 *   least 0755; the index keeps the archive's true mode, owner and capability.
 *
 * An index root (StagingRoot.kind 'index': nothing will run in it) gets the
 * same checks and the same index, but no files: the package's decompressed data tar is written once,
 * beside the root, and each file entry points at its bytes in it
 * (hostPath + contentOffset). One sequential write per package instead of a
 * create, write, chmod and close per file.
 */
import { closeSync, constants as fsConstants, mkdirSync, openSync, writeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { MkimgError } from '../util/errors.js';
import { SHA256_HEX } from '../util/digest.js';
import { readDebBuffer, parseControlStanza, type DataArchiveCache, type Deb } from './deb/deb.js';
import { DataCache } from '../fetch/cache.js';
import type { TarEntry } from './deb/tar.js';
import type { PathKind } from '../stage/types.js';
import type { StageEntry, StagedPackage, StagingRoot } from '../stage/types.js';
import { resolveInIndex, splitPath, joinImage } from '../stage/root.js';
import { ensureDir, imageBasename, imageDirname, imageJoin, writeNewFile } from '../stage/fsutil.js';

const CAP_KEY = 'SCHILY.xattr.security.capability';

/** How many packages unpackDebs prepares ahead of the one being extracted. */
const PREPARE_AHEAD = 4;

/**
 * A .deb whose sha256 has been checked, read and parsed in memory (its xz data
 * archive decompressed), ready for unpackPrepared. Making one touches no root.
 */
export interface PreparedDeb {
  debPath: string;
  sha256: string;
  /** The pinned sha256 of the decompressed data archive, when the lock has one. */
  dataSha256?: string;
  deb: Deb;
}

export interface UnpackOptions {
  /**
   * A cache directory (as for BlobCache) whose data/sha256/ keeps the
   * decompressed data archives of xz and zstd packages, so a warm build does
   * not decompress them again. Absent: nothing is cached. Used for packages
   * whose data archive digest is pinned (`dataSha256`); for the others only
   * with `unpinnedData` (see prepareDeb).
   */
  cacheDir?: string;
  /** Also use cached data archives of packages with no pinned data digest (`--data-cache`). */
  unpinnedData?: boolean;
}

/** A .deb to unpack: its path, its pinned sha256 and, when the lock pins it, its data archive's. */
export interface DebToUnpack {
  path: string;
  sha256: string;
  dataSha256?: string;
}

/**
 * Check a .deb against its pin and read it into memory. Writes nothing into
 * any root (only, with opts.cacheDir, into the data cache), so several can run
 * at once (unpackDebs prepares the next packages while one is being extracted).
 *
 * Trust chain with the data cache: the .deb is still read whole and its sha256
 * checked against the pin before anything else, as without the cache; its
 * control archive and ar layout are still parsed from those verified bytes.
 * Only the decompression of the data member is replaced, by an entry keyed by
 * that verified sha256, written only after the same .deb decompressed cleanly,
 * and checked on every read against a tar digest (a bad entry is deleted and
 * the member decompressed again). When the lock pins the data archive's digest
 * (`dataSha256`, inside the signed manifest like the .deb's), that pin is the
 * digest checked: a cached tar is then exactly as trustworthy as the .deb, and
 * a freshly decompressed one is checked against it too (unpackPrepared). For a
 * package without that pin, only the digest in the entry's own name is there
 * to check, which guards against corruption and truncation, not against
 * someone who can write the cache directory on purpose: such entries are used
 * only when asked (`unpinnedData`, `--data-cache`). Whatever the tar holds,
 * every entry still goes through the Unpacker's checks below.
 */
export async function prepareDeb(
  debPath: string,
  expectedSha256: string,
  opts: UnpackOptions & { dataSha256?: string } = {},
): Promise<PreparedDeb> {
  return prepareWith(
    { path: debPath, sha256: expectedSha256, dataSha256: opts.dataSha256 },
    opts.cacheDir !== undefined ? new DataCache(opts.cacheDir) : undefined,
    opts.unpinnedData ?? false,
  );
}

async function prepareWith(d: DebToUnpack, cache: DataCache | undefined, unpinnedData: boolean): Promise<PreparedDeb> {
  const debPath = d.path;
  const expectedSha256 = d.sha256;
  const dataSha256 = d.dataSha256?.toLowerCase();
  if (dataSha256 !== undefined && !SHA256_HEX.test(dataSha256)) {
    throw new MkimgError('input', `${debPath}: pinned data archive sha256 "${d.dataSha256}" is not 64 hex digits`);
  }
  const expected = expectedSha256.toLowerCase();
  if (!SHA256_HEX.test(expected)) {
    throw new MkimgError('input', `${debPath}: expected sha256 "${expectedSha256}" is not 64 hex digits`);
  }
  const { bytes, actual } = await readVerified(debPath, expected);
  // Parsed only from the bytes just verified: the file is not read again.
  const useCache = cache !== undefined && (dataSha256 !== undefined || unpinnedData);
  const dataCache: DataArchiveCache | undefined = useCache
    ? {
        get: () => (dataSha256 !== undefined ? cache.getPinned(actual, dataSha256) : cache.get(actual)),
        put: (data) => cache.put(actual, data),
      }
    : undefined;
  const deb = await readDebBuffer(debPath, bytes, dataCache ? { dataCache } : {});
  return { debPath, sha256: actual, ...(dataSha256 !== undefined ? { dataSha256 } : {}), deb };
}

/** A .deb read whole and checked against its pin (lower-case hex) before anything else. */
async function readVerified(debPath: string, expected: string): Promise<{ bytes: Buffer; actual: string }> {
  let bytes: Buffer;
  try {
    bytes = await readFile(debPath);
  } catch (e) {
    throw new MkimgError(
      'input',
      `${debPath}: cannot read the package file (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
      { cause: e },
    );
  }
  const actual = createHash('sha256').update(bytes).digest('hex');
  if (actual !== expected) {
    throw new MkimgError('input', `${debPath}: sha256 mismatch: expected ${expected}, got ${actual}`, {
      hint: 'the package file is not the one the lock pins; delete it from the cache and fetch it again (or run `mkimg lock` if the pin is out of date)',
      details: { file: debPath, expected, actual },
    });
  }
  return { bytes, actual };
}

/** Put a prepared .deb's data archive into the staging root (see the rules above). */
export async function unpackPrepared(root: StagingRoot, prepared: PreparedDeb): Promise<StagedPackage> {
  const { debPath, deb } = prepared;
  try {
    const stanza = parseControlStanza(deb.control.control);
    const name = stanza['Package'];
    const version = stanza['Version'];
    const architecture = stanza['Architecture'];
    if (!name || !version || !architecture) {
      throw new MkimgError(
        'input',
        `${debPath}: the control file lacks ${!name ? 'Package' : !version ? 'Version' : 'Architecture'}`,
      );
    }
    const pkg: StagedPackage = {
      name,
      version,
      architecture,
      sha256: prepared.sha256,
      control: deb.control.control,
      ...(deb.control.md5sums !== undefined ? { md5sums: deb.control.md5sums } : {}),
      paths: [],
    };
    // A pinned data digest is checked over the whole decompressed member (a
    // cached one was checked as it was read from the cache).
    const check = prepared.dataSha256 !== undefined && !deb.dataFromCache ? createHash('sha256') : undefined;
    if (root.kind === 'disk') {
      const u = new Unpacker(root, debPath, pkg);
      for await (const e of deb.entries(check ? { tee: (c) => check.update(c) } : {})) await u.entry(e);
    } else {
      // The data tar goes beside the root (removed with the staging directory).
      const dataDir = `${root.dir}.debdata`;
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      const dataPath = `${dataDir}/${root.packages.length}-${prepared.sha256.slice(0, 16)}.tar`;
      const fd = openSync(
        dataPath,
        fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW,
        0o600,
      );
      try {
        const u = new Unpacker(root, debPath, pkg, dataPath);
        const tee = (c: Buffer) => {
          check?.update(c);
          for (let off = 0; off < c.length; ) off += writeSync(fd, c, off, c.length - off);
        };
        for await (const e of deb.entries({ tee })) await u.entry(e);
      } finally {
        closeSync(fd);
      }
    }
    if (check) {
      const got = check.digest('hex');
      if (got !== prepared.dataSha256) {
        throw new MkimgError(
          'input',
          `${name} ${version}: the data archive of ${debPath} decompresses to sha256 ${got}, but the lock pins ${prepared.dataSha256}`,
          {
            hint: "the .deb matches its pin, so the lock's data digest is wrong (edited by hand?) or the decompressor misread the member; run `mkimg lock` again",
            details: { package: name, file: debPath, expected: prepared.dataSha256, actual: got },
          },
        );
      }
    }
    root.packages.push(pkg);
    return pkg;
  } finally {
    await deb.close();
  }
}

export async function unpackDeb(
  root: StagingRoot,
  debPath: string,
  expectedSha256: string,
  opts: UnpackOptions & { dataSha256?: string } = {},
): Promise<StagedPackage> {
  return unpackPrepared(root, await prepareDeb(debPath, expectedSha256, opts));
}

/**
 * unpackDeb for each package in order, with the next packages' checks, reads
 * and decompression (prepareDeb, with opts.cacheDir's data cache) running ahead, at most PREPARE_AHEAD of them.
 * Extraction into the root stays strictly sequential and in `debs` order, and
 * the first failure in that order is the one reported, after everything before
 * it was unpacked, as with a loop of unpackDeb.
 */
export async function unpackDebs(
  root: StagingRoot,
  debs: ReadonlyArray<DebToUnpack>,
  opts: UnpackOptions = {},
): Promise<StagedPackage[]> {
  const cache = opts.cacheDir !== undefined ? new DataCache(opts.cacheDir) : undefined;
  const pending: Array<Promise<PreparedDeb> | undefined> = [];
  let started = 0;
  const out: StagedPackage[] = [];
  try {
    for (let i = 0; i < debs.length; i++) {
      while (started < debs.length && started <= i + PREPARE_AHEAD) {
        const p = prepareWith(debs[started], cache, opts.unpinnedData ?? false);
        p.catch(() => {}); // reported in order, when its turn comes
        pending[started++] = p;
      }
      const prepared = await pending[i]!;
      pending[i] = undefined;
      out.push(await unpackPrepared(root, prepared));
    }
  } catch (e) {
    // Let the preparations already under way finish (they only read) before reporting.
    await Promise.allSettled(pending.filter((p) => p !== undefined));
    throw e;
  }
  return out;
}

/** Linux's limits on one file name and a whole path (with its NUL), as the kernel enforces them. */
const NAME_MAX = 255;
const PATH_MAX = 4096;

class Unpacker {
  private readonly origin: string;
  /** Image paths of files this package wrote or shipped (hardlink targets must be among them). */
  private readonly files = new Set<string>();
  private readonly listed = new Set<string>();
  /** Resolved parent directories (see ensureDir). */
  private readonly dirs = new Map<string, string>();

  /**
   * @param dataPath for an index-only root: the file the data tar is being
   * copied to, which file entries then point into (TarEntry.dataOffset).
   */
  constructor(
    private readonly root: StagingRoot,
    private readonly debPath: string,
    private readonly pkg: StagedPackage,
    private readonly dataPath?: string,
  ) {
    this.origin = `pkg:${pkg.name}`;
  }

  private hostile(entryName: string, why: string): MkimgError {
    return new MkimgError('input', `hostile package ${this.pkg.name} (${this.debPath}): entry "${entryName}": ${why}`, {
      hint: 'mkimg refuses to unpack it; nothing outside the staging root was touched. Check where this package came from.',
      details: { package: this.pkg.name, file: this.debPath, entry: entryName },
    });
  }

  private list(p: string): void {
    if (!this.listed.has(p)) {
      this.listed.add(p);
      this.pkg.paths.push(p);
    }
  }

  /**
   * "./usr/bin/x" -> "/usr/bin/x"; refuses absolute names, "..", an empty
   * name, a component past NAME_MAX (255 bytes) and a path past PATH_MAX
   * (4096 bytes). The one check of names for both roots, on disk and
   * index-only, so both refuse the same packages with the same words.
   */
  private normalize(entryName: string, raw: string, what: string): string {
    if (raw === '') throw this.hostile(entryName, `${what} is empty`);
    if (raw.startsWith('/'))
      throw this.hostile(entryName, `${what} "${raw}" is absolute; package archives use relative names ("./usr/...")`);
    const parts = splitPath(raw);
    if (parts.includes('..'))
      throw this.hostile(entryName, `${what} "${raw}" has a ".." component that could climb out of the root`);
    for (const p of parts) {
      if (Buffer.byteLength(p) > NAME_MAX)
        throw this.hostile(
          entryName,
          `${what} has a component of ${Buffer.byteLength(p)} bytes, more than the ${NAME_MAX} a file name may have`,
        );
    }
    const joined = joinImage(parts);
    if (Buffer.byteLength(joined) >= PATH_MAX)
      throw this.hostile(
        entryName,
        `${what} is ${Buffer.byteLength(joined)} bytes long, more than a path may be (${PATH_MAX - 1})`,
      );
    return joined;
  }

  async entry(e: TarEntry): Promise<void> {
    if (e.notUtf8)
      throw this.hostile(
        e.name,
        'its name or link target is not valid UTF-8 (mkimg keeps names exactly, and cannot keep this one)',
      );
    const path = this.normalize(e.name, e.name, 'name');
    switch (e.type) {
      case 'dir':
        return this.dir(e, path);
      case 'file':
        return this.file(e, path);
      case 'symlink':
        return this.symlink(e, path);
      case 'hardlink':
        return this.hardlink(e, path);
      case 'char':
      case 'block':
        throw this.hostile(
          e.name,
          `${e.type === 'char' ? 'character' : 'block'} device node (${e.devmajor},${e.devminor}): packages must not ship device nodes (an image gets its /dev from the runtime, and creating one would need host privileges)`,
        );
      case 'fifo':
        throw this.hostile(
          e.name,
          'named pipe (fifo): packages must not ship fifos; a program creates its own at run time',
        );
      default:
        throw this.hostile(
          e.name,
          `unsupported tar entry type "${e.typeflag}" (sockets and other special files are refused)`,
        );
    }
  }

  private escape(name: string) {
    return (why: string) => this.hostile(name, why);
  }

  private async parentOf(e: TarEntry, path: string): Promise<string> {
    return ensureDir(this.root, imageDirname(path), this.origin, (p) => this.list(p), this.escape(e.name), this.dirs);
  }

  /** Where a non-directory entry lands (its parent resolved and made), and what is there already. */
  private async place(
    e: TarEntry,
    path: string,
  ): Promise<{
    final: string;
    host: string;
    existingKind: PathKind;
    ex: StageEntry | undefined;
  }> {
    const final = imageJoin(await this.parentOf(e, path), imageBasename(path));
    const existingKind = this.root.kindAt(final);
    return {
      final,
      host: this.root.dir + final,
      existingKind,
      ex: existingKind === null ? undefined : this.root.entries.get(final),
    };
  }

  private conflict(path: string, existing: StageEntry | undefined, what: string): MkimgError {
    if (existing?.origin === this.origin) {
      return new MkimgError('input', `${path}: package ${this.pkg.name} ships it twice, with ${what}`, {
        hint: 'the package has a duplicate entry in its data archive; it is broken, so take another version',
        details: { path, packages: [this.origin] },
      });
    }
    const other = existing ? existing.origin.replace(/^pkg:/, 'package ') : 'an unindexed file';
    return new MkimgError('input', `${path}: ${other} and package ${this.pkg.name} both ship it, with ${what}`, {
      hint: 'two packages disagree about one file; drop one of them from the manifest or pin versions that agree',
      details: { path, packages: [existing?.origin ?? 'unknown', this.origin] },
    });
  }

  private async dir(e: TarEntry, path: string): Promise<void> {
    if (path === '/') return; // "./": the root itself, laid down by createStagingRoot
    const r = resolveInIndex(this.root, path, { followLast: true });
    if (r.clamped) throw this.hostile(e.name, `resolving it through ${r.hops.join(', ')} climbs above the image root`);
    if (r.exists) {
      if (r.kind === 'dir') return; // kept as it is (another package or the layout made it)
      throw this.conflict(r.path, this.root.entries.get(r.path), `a directory here and a ${r.kind} there`);
    }
    const parent = await ensureDir(
      this.root,
      imageDirname(r.path),
      this.origin,
      (p) => this.list(p),
      this.escape(e.name),
      this.dirs,
    );
    const final = imageJoin(parent, imageBasename(r.path));
    // On disk a directory stays traversable for the checks; the index keeps its true mode.
    this.root.layDir(final, (e.mode & 0o777) | 0o755);
    this.root.entries.set(final, { ...this.meta(e, final), type: 'dir', size: 0 });
    this.list(final);
  }

  /** What every entry of this package takes from its tar header: the archive's true mode and owner. */
  private meta(e: TarEntry, final: string): Pick<StageEntry, 'path' | 'mode' | 'uid' | 'gid' | 'origin'> {
    return { path: final, mode: e.mode & 0o7777, uid: e.uid, gid: e.gid, origin: this.origin };
  }

  private capability(e: TarEntry): { capability?: Buffer } {
    const c = e.pax[CAP_KEY];
    return c && c.length ? { capability: Buffer.from(c) } : {};
  }

  private async file(e: TarEntry, path: string): Promise<void> {
    const { final, host, existingKind, ex } = await this.place(e, path);
    if (existingKind !== null) {
      // Something is there already: hash the new content to compare, never write through it.
      const written = await hashBody(e.body);
      const exSha =
        ex?.type === 'file'
          ? ex.sha256
          : ex?.type === 'hardlink'
            ? this.root.entries.get(ex.linkTarget ?? '')?.sha256
            : undefined;
      if (existingKind === 'file' && exSha === written.sha256) {
        this.files.add(final);
        this.list(final);
        return; // identical content: fine, the first one's metadata stays
      }
      throw this.conflict(
        final,
        ex,
        existingKind === 'file' ? 'different content' : `a file here and a ${existingKind} there`,
      );
    }
    // O_EXCL|O_NOFOLLOW: the path was free a moment ago and nothing else writes this root.
    // Index-only: the bytes stay where the data tar copy has them.
    const written = this.dataPath === undefined ? await writeNewFile(host, e.body, e.mode) : await hashBody(e.body);
    this.root.entries.set(final, {
      ...this.meta(e, final),
      type: 'file',
      size: written.size,
      ...(this.dataPath === undefined ? { hostPath: host } : { hostPath: this.dataPath, contentOffset: e.dataOffset }),
      sha256: written.sha256,
      sha1: written.sha1,
      ...this.capability(e),
    });
    this.files.add(final);
    this.list(final);
  }

  private async symlink(e: TarEntry, path: string): Promise<void> {
    if (e.linkname === '') throw this.hostile(e.name, 'symlink with an empty target');
    const { final, existingKind, ex } = await this.place(e, path);
    if (existingKind !== null) {
      // The index holds every link mkimg laid down (nothing else writes the root).
      if (existingKind === 'symlink' && ex?.linkTarget === e.linkname) {
        this.list(final);
        return;
      }
      throw this.conflict(
        final,
        ex,
        existingKind === 'symlink'
          ? `different link targets (${ex?.linkTarget ?? '?'} vs ${e.linkname})`
          : `a symlink here and a ${existingKind} there`,
      );
    }
    this.root.laySymlink(final, e.linkname);
    this.root.entries.set(final, {
      ...this.meta(e, final),
      type: 'symlink',
      mode: e.mode & 0o7777 || 0o777,
      size: 0,
      linkTarget: e.linkname,
    });
    this.list(final);
  }

  private async hardlink(e: TarEntry, path: string): Promise<void> {
    if (e.linkname === '') throw this.hostile(e.name, 'hardlink with an empty target');
    const targetName = this.normalize(e.name, e.linkname, 'hardlink target');
    const t = resolveInIndex(this.root, targetName, { followLast: false });
    if (t.clamped) throw this.hostile(e.name, `hardlink target "${e.linkname}" resolves above the image root`);
    const te = this.root.entries.get(t.path);
    if (
      !t.exists ||
      t.kind !== 'file' ||
      !this.files.has(t.path) ||
      !te ||
      (te.type !== 'file' && te.type !== 'hardlink')
    ) {
      throw this.hostile(e.name, `hardlink target "${e.linkname}" is not a file this package already extracted`);
    }
    const first = te.type === 'hardlink' ? te.linkTarget! : t.path;
    const firstEntry = this.root.entries.get(first);
    const { final, existingKind, ex } = await this.place(e, path);
    if (existingKind !== null) {
      const same =
        existingKind === 'file' &&
        ex !== undefined &&
        ((ex.type === 'hardlink' && ex.linkTarget === first) ||
          (ex.type === 'file' && ex.sha256 !== undefined && ex.sha256 === firstEntry?.sha256));
      if (same) {
        this.files.add(final);
        this.list(final);
        return;
      }
      throw this.conflict(final, ex, 'different content (a hardlink here)');
    }
    // Both ends are inside the root: t.path was resolved within it (and, on disk, is lstat'ed a regular file).
    if (!this.root.layHardlink(final, first))
      throw this.hostile(e.name, `hardlink target "${e.linkname}" is not a regular file`);
    this.root.entries.set(final, {
      ...this.meta(e, final),
      type: 'hardlink',
      size: 0,
      linkTarget: first,
      ...(firstEntry?.sha256 ? { sha256: firstEntry.sha256 } : {}),
      ...this.capability(e),
    });
    this.files.add(final);
    this.list(final);
  }
}

/** sha256, sha1 and size of a body that is not written anywhere (index-only roots). */
async function hashBody(body: AsyncIterable<Buffer>): Promise<{ sha256: string; sha1: string; size: number }> {
  const h = createHash('sha256');
  const h1 = createHash('sha1');
  let size = 0;
  for await (const c of body) {
    h.update(c);
    h1.update(c);
    size += c.length;
  }
  return { sha256: h.digest('hex'), sha1: h1.digest('hex'), size };
}

/**
 * sha256 of a verified .deb's decompressed data archive, the whole member (what
 * `dpkg-deb --fsys-tarfile` prints), for `mkimg lock` to pin as dataSha256.
 * Decompressed here from the .deb itself, never taken from the cache (which
 * this digest is meant to vouch for); stored into the cache at `cacheDir`
 * when given, so the first build after a lock starts warm.
 */
export async function dataArchiveSha256(debPath: string, sha256: string, cacheDir?: string): Promise<string> {
  const cache = cacheDir !== undefined ? new DataCache(cacheDir) : undefined;
  const { bytes, actual } = await readVerified(debPath, sha256.toLowerCase());
  const deb = await readDebBuffer(
    debPath,
    bytes,
    cache ? { dataCache: { get: async () => undefined, put: (data) => cache.put(actual, data) } } : {},
  );
  const h = createHash('sha256');
  try {
    for await (const e of deb.entries({ tee: (c) => h.update(c) })) for await (const _ of e.body) void _;
  } finally {
    await deb.close();
  }
  return h.digest('hex');
}

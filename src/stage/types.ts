/**
 * The staging root: a host directory (where checks can run under the tracer)
 * plus an index that is the source of truth for what goes into the image:
 * ownership, modes, capabilities and origins live here, never in the host's
 * file system metadata (extraction as root or not must give the same image).
 */

export type EntryType = 'file' | 'dir' | 'symlink' | 'hardlink';

export interface StageEntry {
  /** Absolute image path, normalized: "/usr/bin/env". The root itself is "/". */
  path: string;
  type: EntryType;
  /** Permission bits incl. setuid/setgid/sticky (0o7777 mask). */
  mode: number;
  uid: number;
  gid: number;
  /** For files: byte size. 0 otherwise. */
  size: number;
  /** symlink: target as written; hardlink: absolute image path of the file it links to. */
  linkTarget?: string;
  /** Host path holding the content (files only); normally root + path. */
  hostPath?: string;
  /**
   * Byte offset of the content inside hostPath (default 0). Set when a package
   * is indexed without being unpacked: its files are then read straight out of
   * the package's decompressed data tar, `size` bytes from here.
   */
  contentOffset?: number;
  /** Who put it there: "pkg:<name>", "file:<manifest src>", "generated:<what>", "layout". */
  origin: string;
  /** security.capability xattr value, the only xattr kept. */
  capability?: Buffer;
  /** sha256 of content when already known (saves a rehash). */
  sha256?: string;
  /** sha1 of content when already known: SPDX 2.3 requires it for every file in the SBOM. */
  sha1?: string;
}

/** What is at an image path of a root: null when nothing. */
export type PathKind = 'file' | 'dir' | 'symlink' | 'other' | null;

/** An image path resolved inside a root (see StagingRoot.resolve). */
export interface Resolved {
  /** The resolved image path ("/usr/bin/env"); no symlink in it except possibly the last component when followLast is false. */
  path: string;
  /** Image paths of the symlinks followed, in order. */
  hops: string[];
  /** Whether the resolved path exists in the root. */
  exists: boolean;
  /** What the resolved path is, when it exists. */
  kind?: 'file' | 'dir' | 'symlink' | 'other';
  /** True when a ".." (from the path or a link target) tried to climb above the root and was held at "/". */
  clamped: boolean;
  /** Set when a non-directory sat where a directory was needed; the rest was appended without resolution. */
  notDir?: string;
}

/**
 * The staging root every stage writes and reads through: the index (the
 * truth about what the image holds) and the few operations whose effect on
 * disk depends on the kind of root. Two implementations (stage/root.ts):
 * - `disk`: every entry is laid down under `dir` too, so checks can run in it;
 *   or, for a root over a cached package root (`lowerDirs`), only what this
 *   build adds is under `dir` and the sandbox sees the overlay of both;
 * - `index`: the index alone (nothing runs in it: `minimize: false`); package
 *   files stay in their data tars and files: inputs where they are, and only
 *   generated files are written under `dir`.
 */
export interface StagingRoot {
  readonly kind: 'disk' | 'index';
  /** Host directory of the root: where this build writes. */
  readonly dir: string;
  /**
   * Read-only host directories under `dir` (topmost first): the checks see the
   * overlay of `dir` on them, and index entries of their files name them in
   * hostPath. Empty when everything is under `dir`.
   */
  readonly lowerDirs: readonly string[];
  /** path -> entry. */
  readonly entries: Map<string, StageEntry>;
  /** Packages unpacked into this root, with the control stanza and file list (for status.d, SBOM). */
  readonly packages: StagedPackage[];
  /** The one path resolver: symlinks followed inside the root, ".." held at "/", the host never looked at. */
  resolve(imagePath: string, opts?: { followLast?: boolean }): Resolved;
  /** What is at an image path (not following a last symlink). */
  kindAt(path: string): PathKind;
  /** Lay down a directory the caller indexes (on disk with `mode`, default 0755; nothing in an index root). */
  layDir(path: string, mode?: number): void;
  /** Lay down a symlink the caller indexes. */
  laySymlink(path: string, target: string): void;
  /** Lay down a hard link to the regular file at `existing`; false when that is not a regular file. */
  layHardlink(path: string, existing: string): boolean;
  /** Remove a file or link the caller un-indexes. */
  remove(path: string): void;
  /** Make sure the host directory of a generated file exists (an index root has its directories in the index only). */
  hostDirFor(parent: string): void;
  /** Where the bytes of the file (or hard link) at an image path are on the host. */
  hostFile(path: string): string;
}

export interface StagedPackage {
  name: string;
  version: string;
  architecture: string;
  /** sha256 of the .deb */
  sha256: string;
  /** The control file text (DEBIAN/control), verbatim. */
  control: string;
  /** The package's md5sums file, verbatim, when it has one. */
  md5sums?: string;
  /** Image paths this package created (files, links, dirs it introduced). */
  paths: string[];
  /**
   * Image paths its maintainer scripts would have generated from its files
   * (Python byte code): its own in layers and the SBOM, but not files it ships
   * (keepPackages, the package database).
   */
  generated?: string[];
}

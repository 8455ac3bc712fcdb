/**
 * The staging root: a real directory (so checks can run in it under the tracer)
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

export interface StagingRoot {
  /** Host directory of the root. */
  dir: string;
  /** path -> entry. */
  entries: Map<string, StageEntry>;
  /** Packages unpacked into this root, with the control stanza and file list (for status.d, SBOM). */
  packages: StagedPackage[];
  /**
   * Index-only root: packages and files: inputs are indexed, not laid down on
   * disk (their content stays in the packages' data tars and the input files),
   * for builds that run nothing in the root (`minimize: false`). Only
   * generated files (accounts, CA bundle, status.d, SBOM) are written under dir.
   */
  indexOnly?: boolean;
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
}

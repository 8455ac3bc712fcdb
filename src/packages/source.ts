/**
 * The package-source seam: what lock and build need from wherever packages
 * come from (select.ts picks the one that serves a manifest). Debian
 * (src/debian/) is the one implementation; a second source is a sibling
 * folder behind this same interface. Nothing on this side knows what a .deb,
 * a suite or a multiarch triplet is: the architecture is a parameter (the
 * manifest's, one at a time).
 */
import type { LockedPackage, Manifest } from '../manifest/types.js';
import type { StagingRoot } from '../stage/types.js';

export interface ResolveOptions {
  /** Mirror overrides per suite (--mirror). */
  mirrors?: Record<string, string>;
  /** Where the host's package-manager configuration lives (tests). */
  aptRoot?: string;
  cacheDir?: string;
  env?: NodeJS.ProcessEnv;
  now?: Date;
  /** Told, one line each, where every index came from and who signed it (a note on the terminal). */
  onSource?: (line: string) => void;
  /** Download progress on stderr (shown only on a terminal). */
  progress?: boolean;
}

export interface FetchOptions {
  mirrors?: Record<string, string>;
  aptRoot?: string;
  cacheDir?: string;
  progress?: boolean;
  /** A line per step for the build's progress. */
  onProgress?: (line: string) => void;
}

/** A package on local disk, verified against its pin, ready to unpack. */
/** A package as the manifest pins it: what it is, before anything is read. */
export interface PinnedPackage {
  /** The package name (a local file: `file:PATH`). */
  name: string;
  sha256: string;
  /** The pinned digest of its decompressed payload, when the lock has one. */
  dataSha256?: string;
}

/** A pinned package on local disk, verified against its pin. */
export interface FetchedPackage extends PinnedPackage {
  path: string;
}

export interface GenerateOptions {
  /** The manifest's architecture (its programs run under emulation when foreign). */
  architecture: string;
  /** A host directory holding the root's files, laid out on demand: for a root that is an index. */
  runnable: () => Promise<string>;
  onProgress?: (line: string) => void;
}

export interface UnpackOptions {
  cacheDir: string;
  /** Use cached decompressed payloads the lock does not pin (--data-cache). */
  unpinnedData: boolean;
}

/** What an SBOM says of an installed package that still contributes kept files. */
export interface DescribedPackage {
  name: string;
  version: string;
  /** Kept image paths the package owns (their files are listed under it). */
  paths: string[];
  /** Kept license files the package names (listed under it when no other package owns them). */
  licensePaths: string[];
  /** Package URL (purl) scanners match advisories on. */
  purl: string;
  /** SPDX supplier ("Organization: …", "Person: …" or NOASSERTION). */
  supplier: string;
  homepage?: string;
  /** Where it was built from, when that differs from its name. */
  sourceInfo?: string;
  summary?: string;
  /** The package file's name (e.g. the .deb's pool file name). */
  fileName?: string;
  /** sha256 of the package file. */
  sha256: string;
  /** Its declared license: an SPDX expression, the license texts it names, a comment on where that was read. */
  license: {
    expression: string;
    extracted: { licenseId: string; name: string; extractedText: string }[];
    comment?: string;
  };
}

export interface PackageSource {
  /** lock: the pinned closure of the manifest's package requests, for its architecture. */
  resolve(manifest: Manifest, opts: ResolveOptions): Promise<LockedPackage[]>;
  /** build: every package of the manifest (pinned and local) as pinned, in unpack order; reads nothing. */
  pinned(manifest: Manifest): PinnedPackage[];
  /** build: the same packages, fetched and verified, in the same order. */
  fetch(manifest: Manifest, opts: FetchOptions): Promise<FetchedPackage[]>;
  /** build: unpack them, in order, into the staging root (no maintainer scripts). */
  unpack(root: StagingRoot, packages: FetchedPackage[], opts: UnpackOptions): Promise<void>;
  /**
   * build, after unpack: what the packages' maintainer scripts would have made by running their
   * own programs (Debian: Python byte code), made by running them in the sandbox. Returns the paths written.
   */
  generate(root: StagingRoot, opts: GenerateOptions): Promise<string[]>;
  /** build: the package database scanners read, for the packages that keep files; returns the paths written. */
  writeDatabase(root: StagingRoot, keep: Set<string>): string[];
  /**
   * build: the installed packages that still contribute kept files (exactly those of the
   * package database), in a stable order, as the SBOM describes them. `sha256ByName`
   * overrides the package file digest recorded at unpack.
   */
  describe(
    root: StagingRoot,
    keep: Set<string>,
    manifest: Manifest,
    sha256ByName?: Map<string, string> | Record<string, string>,
  ): DescribedPackage[];
}

/**
 * The manifest, as mkimg uses it after parsing and validation (src/manifest/load.ts).
 * Paths of local inputs are already absolute (resolved against the manifest's folder).
 * The YAML spelling is in SPEC.md and manifests/mkimg-v1.schema.json.
 */

export interface Manifest {
  apiVersion: 'mkimg/v1';
  name: string;
  tag: string; // default "latest"
  /**
   * The Debian architecture being built (amd64, arm64, ...): the first of
   * `architectures`, or the one a per-platform view (forArchitecture) is for.
   */
  architecture: string;
  /** Every architecture the manifest builds, in the manifest's order (one image per architecture). */
  architectures: string[];
  sourceDateEpoch: number; // seconds; every timestamp in the image derives from it
  sources: Source[];
  packages: PackageRequest[];
  files: FileInput[];
  accounts: Accounts;
  config: ImageConfig;
  minimize: MinimizeSpec | false;
  /** How the kept files are split into layers (default: origin). */
  layering: LayeringSpec;
  /** Compile the Python byte code Debian's postinsts would have (default: true). */
  bytecode: boolean;
  /** How layer blobs are compressed (default: gzip). */
  compression: 'gzip' | 'zstd' | 'none';
  /** Images built beside the main one (tag TAG-NAME): its layers plus one of these packages. Sorted by name. */
  variants: Variant[];
  lock?: Lock;
  /** Where the manifest came from and its exact bytes (what a signature covers). */
  origin: ManifestOrigin;
}

/**
 * origin: packages | files: inputs | generated system files;
 * per-package: one layer per package (the biggest budget-2 alone, the rest
 * together), then files: inputs, then generated files; single: one layer.
 */
export interface LayeringSpec {
  strategy: 'origin' | 'per-package' | 'single';
  /** per-package: at most this many layers in all (default 16). */
  budget: number;
}

export interface ManifestOrigin {
  path: string; // absolute path of manifest.yaml
  dir: string; // its folder: relative paths resolve against it
  bytes: Buffer;
  sha256: string; // hex sha256 of bytes
}

export interface Source {
  /** Explicit mirror URL; when absent the URL comes from --mirror, MKIMG_MIRROR_*, or the host's apt config. */
  url?: string;
  suites: string[];
  components: string[];
  /** Absolute path of an armored or binary OpenPGP keyring that signs this repository. */
  keyring?: string;
  allowUnsigned: boolean;
}

export type PackageRequest =
  | {
      kind: 'name';
      name: string;
      version?: string;
      line?: number /** only for these architectures */;
      architectures?: string[];
    }
  | { kind: 'deb'; path: string; sha256: string; line?: number };

export interface FileInput {
  src: string; // absolute host path of a file or directory
  /** src as the manifest writes it (the lock keys pins by it). */
  srcAsWritten?: string;
  dest: string; // absolute path in the image
  mode?: number; // overrides the 0644/0755 rule (files; for a directory tree: applies to files)
  uid?: number;
  gid?: number;
  sha256?: string; // pin: file sha256, or tree digest for a directory (see src/stage/files.ts)
}

export interface Accounts {
  groups: GroupSpec[];
  users: UserSpec[];
}

export interface GroupSpec {
  name: string;
  gid: number;
  members: string[];
}

export interface UserSpec {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
  gecos?: string;
}

export interface ImageConfig {
  entrypoint?: string[];
  cmd?: string[];
  env: Record<string, string>;
  workdir?: string;
  user?: string;
  labels: Record<string, string>;
  exposedPorts: string[];
  stopSignal?: string;
  volumes?: string[];
}

export interface MinimizeSpec {
  checks: CheckSpec[]; // empty means: entrypoint + cmd, expecting exit 0
  keepGroups: string[]; // nss, certificates, timezones, locales, gconv
  keep: string[]; // globs, image paths
  exclude: string[]; // globs
  keepListed: boolean;
  /** Packages kept whole (every file they ship, plus the ELF closure of those files). */
  keepPackages: string[];
  timeoutSeconds: number;
}

export type TextExpectation = string | { regex: string };

export interface CheckSpec {
  name?: string;
  args: string[];
  env: Record<string, string>;
  stdin?: string;
  workdir?: string;
  user?: string;
  expect: { exitCode: number; stdout?: TextExpectation; stderr?: TextExpectation };
}

/** The `lock:` section written by `mkimg lock`. Versioned so a later schema can read old locks. */
/** A variant image, e.g. debug: the main image's layers plus a layer of `packages` (unminimized). */
export interface Variant {
  name: string;
  packages: Extract<PackageRequest, { kind: 'name' }>[];
  /** The variant's entrypoint (its cmd is then empty); default: the main image's config. */
  entrypoint?: string[];
}

export interface Lock {
  version: 1;
  /** sha256 of what the package resolution depended on (lock/resolution.ts); absent in older locks. */
  resolution?: string;
  /** The pins of a one-architecture manifest (empty when `architectures` holds them). */
  packages: LockedPackage[];
  /** The pins of each architecture of a manifest with several. */
  architectures?: Record<
    string,
    { packages: LockedPackage[]; variants?: Record<string, { packages: LockedPackage[] }> }
  >;
  /** The pins each variant adds to the main closure. */
  variants?: Record<string, { packages: LockedPackage[] }>;
  files: LockedFile[];
}

export interface LockedPackage {
  name: string;
  version: string;
  architecture: string;
  /** The suite it was resolved from (URL is configuration, not content). */
  suite: string;
  /** Path below the mirror root, e.g. pool/main/g/glibc/libc6_2.36-9_amd64.deb */
  filename: string;
  sha256: string;
  size: number;
  /**
   * sha256 of the package's decompressed data archive (data.tar, as
   * `dpkg-deb --fsys-tarfile` prints it). Lets a build take the unpacked
   * archive from the cache with the same trust as the .deb. Optional: older
   * locks lack it.
   */
  dataSha256?: string;
}

export interface LockedFile {
  src: string; // as written in the manifest (relative)
  sha256: string;
}

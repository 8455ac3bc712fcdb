/**
 * `mkimg build`: the pipeline, stage by stage. Each stage takes what it needs
 * as arguments; this file only sequences them and owns the temporary staging
 * directory (always removed, also on failure).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { writeFileAtomic } from '../util/atomic-write.js';
import { release as osRelease, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { readManifestBytes } from '../manifest/interpret.js';
import { parseManifestQuickly } from '../manifest/read.js';
import type { Manifest } from '../manifest/types.js';
import type { StagingRoot } from '../stage/types.js';
import { createStagingRoot, indexedStagingRoot, layeredStagingRoot } from '../stage/root.js';
import { PackageRootCache, packageRootKey, packageRootOf, type RootFacts } from '../stage/package-root.js';
import { addFileInputs } from '../stage/files.js';
import { numericUser, writeAccounts, validateUser } from '../system/accounts.js';
import { writeSystemFiles } from '../system/files.js';
import { SBOM_IMAGE_PATH } from '../sbom/spdx.js';
import { stageSbom } from '../sbom/stage.js';
import { layerEntries } from '../image/root-entries.js';
import { defaultCacheDir } from '../fetch/cache.js';
import { lockIsCurrent } from '../lock/check.js';
import type { MinimizeReport } from '../minimize/report.js';
import { type KnownLayers, writeLayeredImage, type WrittenImage } from '../image/write-image.js';
import { LayerBlobCache } from '../image/layer-cache.js';
import { splitLayers } from '../image/layering.js';
import { checkStartCommand } from '../minimize/entrypoint.js';
import { LayerHashThread } from '../image/layer-hash.js';
import { MANIFEST_SHA_LABEL } from '../oci/model.js';
import type { PushResult } from '../registry/push.js';
// Loaded where used (signature, minimization, registry): a plain build does not pay for them.
import { MkimgError } from '../util/errors.js';
import { armSignalCleanup, collectStale, escapeName, removeOnSignal } from '../util/cleanup.js';
import { asEnvironmentError } from '../util/environment.js';
import { emulationFor } from '../trace/emulation.js';
import { tracerPath } from '../trace/run.js';
import { sha256Hex } from '../util/digest.js';
import { canonicalJson } from '../util/canonical-json.js';
import { forArchitecture, platformToArchitecture } from '../manifest/platform.js';
import { writePlatformImages } from '../image/platforms.js';
import { packageSourceFor } from '../packages/select.js';
import { defaultLibraryDirs, hostArchitecture } from '../debian/arch.js';
import { pool } from '../util/pool.js';

export interface BuildOptions {
  manifestPath: string;
  output: string;
  cacheDir?: string;
  /** suite → mirror URL, from --mirror. */
  mirrors?: Record<string, string>;
  /** Root of the apt configuration to read mirrors from (tests point it elsewhere). */
  aptRoot?: string;
  quiet?: boolean;
  reportPath?: string;
  sbomPath?: string;
  /** Refuse the manifest unless a good signature by a key in this keyring covers it. */
  requireSignature?: { keyring: string; signature?: string };
  /** Parent directory for the staging root (default: the system temp dir). */
  workDir?: string;
  /** Progress lines (stderr) for long stages. */
  onProgress?: (message: string) => void;
  /** Push the result to this reference (host/repo[:tag]). */
  push?: string;
  /** A registry repository (host/repo) used as a shared build cache. */
  cacheRegistry?: string;
  /** Allow plain HTTP to non-loopback registries. */
  insecure?: boolean;
  /** Reuse decompressed .deb data archives from the cache (faster warm builds; see SPEC §8 "Cache"). */
  dataCache?: boolean;
  /** Build only this platform of the manifest's architectures (linux/arm64 or arm64). */
  platform?: string;
  /**
   * Reuse what earlier builds left in the cache that nothing but the cache vouches for: staged
   * package roots and compressed layers (default true; verify's rebuild: false).
   */
  cachedWork?: boolean;
  /**
   * Re-pin changed files: inputs into the manifest first (offline, as `mkimg
   * lock` does when the packages need no resolving), for local iteration.
   * Never with requireSignature: the manifest's bytes change.
   */
  repin?: boolean;
}

export interface BuildResult {
  imageId: string;
  manifestDigest: string;
  output: string;
  sizeBytes: number;
  name: string;
  tag: string;
  manifestSha256: string;
  layers: WrittenImage['layers'];
  packages: number;
  files: number;
  signer?: string;
  minimize?: MinimizeReport;
  /** "hit": pulled from --cache-registry and checked; "published": built and pushed there; "unavailable": built, the cache could not be used. */
  cache?: 'hit' | 'published' | 'unavailable';
  /** Things that did not stop the build but that the user should know. */
  warnings: string[];
  /** With several architectures: each platform's image (manifestDigest is then the image index's digest, imageId the host platform's). */
  platforms?: { architecture: string; manifestDigest: string; imageId: string; minimize?: MinimizeReport }[];
  pushed?: PushResult;
  /** With repin: the files: inputs whose pin changed (the manifest file was rewritten). */
  repinned?: string[];
  /** The variant images written beside the output (variants:). */
  variants?: { name: string; output: string; imageId: string; manifestDigest: string; packages: string[] }[];
}

/** Where a variant's image goes: beside the output, its name before the extension (app.tar → app-debug.tar). */
export function variantOutput(output: string, variant: string): string {
  const m = /^(.*?)(\.tar)?$/.exec(output)!;
  return `${m[1]}-${variant}${m[2] ?? ''}`;
}

export async function buildImage(opts: BuildOptions): Promise<BuildResult> {
  const progress = withTimings(opts.onProgress ?? (() => {}));
  const output = resolve(opts.output);
  if (!existsSync(dirname(output)) || !statSync(dirname(output)).isDirectory()) {
    throw new MkimgError('usage', `output folder ${dirname(output)} does not exist`);
  }

  const manifestPath = resolve(opts.manifestPath);
  let repinned: string[] | undefined;
  if (opts.repin) {
    if (opts.requireSignature) {
      throw new MkimgError(
        'usage',
        '--repin rewrites the manifest, so a signature over it no longer covers it: it cannot go with --require-signature',
        { hint: 'for a release: mkimg lock, mkimg sign, then build with --require-signature' },
      );
    }
    const { lockManifest } = await import('../lock/lock.js');
    const r = await lockManifest(manifestPath, { filesOnly: true });
    repinned = r.filesChanged;
    if (r.changed)
      progress(`repin: ${r.filesChanged.join(', ')} re-pinned in ${manifestPath} (its bytes changed: sign it again)`);
  }

  // Signature first, over the very bytes that are then parsed (no window for
  // the file to change in between): nothing is fetched for an untrusted manifest.
  const bytes = readManifestBytes(manifestPath);
  let signer: string | undefined;
  if (opts.requireSignature) {
    const { checkManifestSignature } = await import('../sign/verify-signature.js');
    const r = await checkManifestSignature(
      manifestPath,
      opts.requireSignature.signature,
      opts.requireSignature.keyring,
      bytes,
    );
    signer = r.fingerprint;
  }
  const parsed = await parseManifestQuickly(bytes, manifestPath);
  checkLock(parsed);
  const manifest = opts.platform ? forArchitecture(parsed, platformToArchitecture(opts.platform)) : parsed;
  validateUser(manifest);

  const registryOpts = { insecure: opts.insecure, progress: !opts.quiet };
  if (!opts.cacheRegistry) {
    const result =
      manifest.architectures.length > 1
        ? await buildPlatforms(manifest, opts, output, progress)
        : await buildFromInputs(manifest, opts, output, progress);
    result.signer = signer;
    if (repinned) result.repinned = repinned;
    if (opts.push) {
      progress(`push: ${opts.push}`);
      const { pushImage } = await import('../registry/push.js');
      result.pushed = await pushImage(output, opts.push, registryOpts);
    }
    return result;
  }

  // A registry as shared build cache: an entry built from the same manifest
  // bytes replaces the build when it passes the checks of `mkimg verify
  // --no-rebuild` (every digest, and the manifest binding label). A cache that
  // is down or refuses costs a build, never the result: it becomes a warning.
  let built: BuildResult | undefined;
  const warnings: string[] = [];
  const { cachedBuild } = await import('../registry/build-cache.js');
  const { checkImageIntegrity } = await import('../verify/integrity.js');
  const cached = await cachedBuild({
    cacheRepo: opts.cacheRegistry,
    manifestSha256: manifest.origin.sha256,
    name: manifest.name,
    tag: manifest.tag,
    output,
    build: async () => {
      built =
        manifest.architectures.length > 1
          ? await buildPlatforms(manifest, opts, output, progress)
          : await buildFromInputs(manifest, opts, output, progress);
    },
    check: async (tar) => {
      const checked = await checkImageIntegrity(tar);
      if (checked.labels[MANIFEST_SHA_LABEL] !== manifest.origin.sha256) {
        throw new MkimgError('binding', `the cache entry was not built from ${manifest.origin.path}`);
      }
    },
    push: opts.push,
    registry: registryOpts,
    onNote: progress,
  });
  if (cached.cache === 'unavailable' || cached.cache === 'rejected') {
    warnings.push(
      `cache registry ${opts.cacheRegistry}: ${cached.cache === 'unavailable' ? 'lookup failed' : 'entry failed its checks'}; built instead`,
    );
  }
  if (cached.cache !== 'hit' && !cached.published)
    warnings.push(`cache registry ${opts.cacheRegistry}: could not publish the image`);
  const result = built ?? (await describeImage(manifest, output));
  return {
    ...result,
    signer,
    ...(repinned ? { repinned } : {}),
    cache: cached.cache === 'hit' ? 'hit' : cached.published ? 'published' : 'unavailable',
    pushed: cached.pushed,
    warnings: [...result.warnings, ...warnings],
  };
}

/** What a build result says about an image tar taken from the cache (checked already). */
async function describeImage(manifest: Manifest, output: string): Promise<BuildResult> {
  const { checkImageIntegrity } = await import('../verify/integrity.js');
  const checked = await checkImageIntegrity(output);
  return {
    imageId: checked.configDigest,
    manifestDigest: checked.manifestDigest,
    output,
    sizeBytes: statSync(output).size,
    name: manifest.name,
    tag: manifest.tag,
    manifestSha256: manifest.origin.sha256,
    layers: checked.layers,
    packages: manifest.lock?.packages.length ?? 0,
    files: 0,
    warnings: [],
  };
}

/**
 * Several architectures: each platform is built as its own image (from the
 * same manifest bytes, its own pins) beside the output, two at a time (a
 * foreign platform's checks run emulated, mostly on the other core), then the
 * images are gathered into one tar with an image index. The bytes do not
 * depend on the order the builds finish in.
 */
async function buildPlatforms(
  manifest: Manifest,
  opts: BuildOptions,
  output: string,
  progress: (m: string) => void,
): Promise<BuildResult> {
  const parts = mkdtempSync(join(dirname(output), `.${basename(output)}.platforms-`));
  try {
    const results = new Map<string, BuildResult>();
    await pool(manifest.architectures, 2, async (arch) => {
      const perArch = (p: string | undefined) => (p ? p.replace(/(\.[^./]*)?$/, (ext) => `.${arch}${ext}`) : undefined);
      const r = await buildFromInputs(
        forArchitecture(manifest, arch),
        { ...opts, sbomPath: perArch(opts.sbomPath), reportPath: perArch(opts.reportPath) },
        join(parts, `${arch}.tar`),
        (m) => progress(`${arch}: ${m}`),
      );
      results.set(arch, r);
    });
    progress('normalize: writing the image index');
    const written = await writePlatformImages(
      manifest.architectures.map((a) => ({ architecture: a, tar: join(parts, `${a}.tar`) })),
      output,
      manifest.sourceDateEpoch,
      hostArchitecture(),
    );
    const host = results.get(hostArchitecture()) ?? results.get(manifest.architectures[0]!)!;
    // Each variant: the platforms' variant images gathered into an index of their own, beside the output.
    const variants: NonNullable<BuildResult['variants']> = [];
    for (const v of manifest.variants) {
      const vout = variantOutput(output, v.name);
      const vwritten = await writePlatformImages(
        manifest.architectures.map((a) => ({ architecture: a, tar: variantOutput(join(parts, `${a}.tar`), v.name) })),
        vout,
        manifest.sourceDateEpoch,
        hostArchitecture(),
      );
      const perArch = [...results.values()].flatMap((r) => r.variants?.filter((x) => x.name === v.name) ?? []);
      variants.push({
        name: v.name,
        output: vout,
        imageId: host.variants?.find((x) => x.name === v.name)?.imageId ?? '',
        manifestDigest: vwritten.indexDigest,
        packages: [...new Set(perArch.flatMap((x) => x.packages))].sort(),
      });
    }
    return {
      ...host,
      imageId: host.imageId,
      manifestDigest: written.indexDigest,
      output,
      sizeBytes: written.sizeBytes,
      ...(variants.length ? { variants } : { variants: undefined }),
      platforms: written.platforms.map((p) => ({ ...p, minimize: results.get(p.architecture)!.minimize })),
      warnings: [...results.values()].flatMap((r) => r.warnings),
    };
  } finally {
    rmSync(parts, { recursive: true, force: true });
  }
}

async function buildFromInputs(
  manifest: Manifest,
  opts: BuildOptions,
  output: string,
  progress: (m: string) => void,
): Promise<BuildResult> {
  const source = packageSourceFor(manifest);
  // What the packages are is known from the pins alone; their files are read only to unpack them.
  const pinned = source.pinned(manifest);
  const fetchPackages = () =>
    source.fetch(manifest, {
      mirrors: opts.mirrors,
      cacheDir: opts.cacheDir,
      aptRoot: opts.aptRoot,
      progress: !opts.quiet,
      onProgress: progress,
    });

  // Nothing runs in the staging root without minimization: index packages and
  // inputs in place instead of laying every file down on disk.
  const indexOnly = manifest.minimize === false;
  // The layer's digests are taken on a second thread when the layer is big;
  // it boots while the root is staged. (Minimized builds hash files as they
  // stage them: their layer is hashed inline.)
  const hashThread = indexOnly ? await LayerHashThread.start() : undefined;
  const stagingParent = opts.workDir ?? tmpdir();
  // Staging roots of killed builds (their pid is in the name) go first.
  collectStale(stagingParent, /^mkimg-stage-(\d+)-/);
  collectStale(dirname(output), new RegExp(`^\\.${escapeName(basename(output))}\\.(\\d+)\\..*tmp$`));
  armSignalCleanup();
  const stagingDir = mkdtempSync(join(stagingParent, `mkimg-stage-${process.pid}-`));
  const unregister = removeOnSignal(stagingDir);
  // A package root this build filled but could not keep in the cache.
  let releasePackages = () => {};
  try {
    progress('staging: unpacking packages');
    // Decompressed data archives come from the cache when the lock pins their
    // digest (the pin vouches for them, as for the .debs). Without a pin
    // nothing outside the cache vouches for a cached tar, so whoever can write
    // the cache could change the image: those are used only with --data-cache.
    const unpackOptions = { cacheDir: opts.cacheDir ?? defaultCacheDir(), unpinnedData: opts.dataCache ?? false };
    const unpack = async (into: StagingRoot) => {
      const debs = await fetchPackages();
      await source.unpack(into, debs, unpackOptions);
      if (!manifest.bytecode) return;
      await source.generate(into, {
        architecture: manifest.architecture,
        // An index root has no files to run: its packages are unpacked once more, for this alone.
        runnable: async () => {
          const disk = await createStagingRoot(join(stagingDir, 'runnable'));
          await source.unpack(disk, debs, unpackOptions);
          return disk.dir;
        },
        onProgress: progress,
      });
      rmSync(join(stagingDir, 'runnable'), { recursive: true, force: true });
    };
    // The packages are unpacked once and kept in the cache (checked on every reuse): for a
    // minimized build as a root the checks run over, for `minimize: false` as their data archives
    // and an index into them. This build's own files go in a root of their own on top.
    // Nothing outside the cache vouches for a cached root (as for unpinned data, --data-cache): a
    // rebuild that proves an image (verify) does not use one, and one built from unpinned data is not kept.
    const kind = indexOnly ? 'index' : 'disk';
    const rootCache =
      opts.cachedWork === false ? undefined : new PackageRootCache(opts.cacheDir ?? defaultCacheDir(), kind);
    const rootKey = packageRootKey(manifest.architecture, pinned, kind, { bytecode: manifest.bytecode });
    let packages = rootCache?.open(rootKey);
    if (!packages && rootCache && !opts.dataCache) {
      const filled = await rootCache.fill(rootKey, unpack);
      packages = filled.root;
      releasePackages = filled.release;
    }
    if (!packages) {
      const own = await createStagingRoot(join(stagingDir, 'packages'), { indexOnly });
      await unpack(own);
      packages = packageRootOf(own);
    }
    const root: StagingRoot = indexOnly
      ? indexedStagingRoot(join(stagingDir, 'root'), packages)
      : layeredStagingRoot(join(stagingDir, 'root'), packages);
    const rootFacts = packages.facts && { facts: packages.facts, dir: packages.dir };
    progress('staging: files: inputs and system files');
    const pins = await addFileInputs(root, manifest.files, { materialize: !indexOnly });
    // What maintainer scripts would have written: always kept.
    const systemPaths = [...writeAccounts(root, manifest), ...writeSystemFiles(root, manifest)];
    // The image config names the user by number (orchestrators check uids); the name stays in /etc/passwd.
    const config = { ...manifest.config, user: numericUser(root, manifest.config.user) };

    let keep: Set<string>;
    let report: MinimizeReport | undefined;
    if (manifest.minimize === false) {
      keep = new Set(root.entries.keys());
    } else {
      progress('minimize: tracing checks');
      const { minimizeAndProve } = await import('../minimize/minimize.js');
      const { KeepMemo } = await import('../minimize/keep.js');
      // Checks of a foreign architecture run under qemu-user (binfmt_misc); say so plainly when they cannot.
      emulationFor(manifest.architecture);
      // What earlier builds learnt of the cached package root's ELF files is not read again.
      const memo = new KeepMemo();
      const knownElf = rootFacts?.facts.read(ELF_FACTS);
      if (rootFacts) memo.seed(rootFacts.dir, knownElf);
      // A first proof round that passed on exactly these bytes and checks, natively, is not run again.
      const proven = rootFacts && manifest.architecture === hostArchitecture() ? provenIn(rootFacts.facts) : undefined;
      // What an earlier build of this manifest kept of this root: tried first, in one round (see speculate).
      const guesses = rootFacts && keepGuesses(rootFacts.facts, manifest);
      const r = await minimizeAndProve(root, manifest.minimize, manifest.config, {
        workDir: stagingDir,
        libDirs: defaultLibraryDirs(manifest.architecture),
        onProgress: progress,
        memo,
        ...(proven ? { provenBefore: proven, sandboxIdentity: sandboxIdentity() } : {}),
        ...(guesses?.guess ? { guess: guesses.guess } : {}),
      });
      guesses?.keep(r.keep);
      const learnt = rootFacts && memo.learnt(rootFacts.dir);
      if (rootFacts && learnt) {
        const base = typeof knownElf === 'object' && knownElf !== null && !Array.isArray(knownElf) ? knownElf : {};
        rootFacts.facts.write(ELF_FACTS, { ...base, ...learnt });
      }
      keep = r.keep;
      report = r.report;
    }

    progress('sbom: package database and SBOM');
    for (const p of systemPaths) keep.add(p);
    // Whatever the checks ran: the image must be able to start its command.
    checkStartCommand(root, keep, config);
    for (const p of source.writeDatabase(root, keep)) keep.add(p);
    const sbom = await stageSbom(root, keep, manifest, new Map(pinned.map((d) => [d.name, d.sha256])), pins);
    for (const p of sbom.paths) keep.add(p);

    progress('normalize: writing image');
    const spec = {
      name: manifest.name,
      tag: manifest.tag,
      architecture: manifest.architecture,
      sourceDateEpoch: manifest.sourceDateEpoch,
      config,
      manifestSha256: manifest.origin.sha256,
    };
    const groups = splitLayers(
      layerEntries(root, keep, {
        pins,
        content: sbom.content ? new Map([[SBOM_IMAGE_PATH, sbom.content]]) : undefined,
      }),
      manifest.layering,
    );
    const layerCache = opts.cachedWork === false ? undefined : new LayerBlobCache(opts.cacheDir ?? defaultCacheDir());
    const written = await writeLayeredImage(spec, groups, output, {
      ...(rootFacts ? { knownLayers: knownLayersIn(rootFacts.facts) } : {}),
      hashThread,
      beforeCommit: () => pins.check(),
      compression: manifest.compression,
      workDir: stagingDir,
      layerCache,
    });
    const variants: NonNullable<BuildResult['variants']> = [];
    for (const v of manifest.variants) {
      progress(`variant ${v.name}: adding its packages`);
      const vout = variantOutput(output, v.name);
      const vroot = await createStagingRoot(join(stagingDir, `variant-${v.name}`), { indexOnly: true });
      const vmanifest: Manifest = {
        ...manifest,
        packages: [],
        lock: { ...manifest.lock!, packages: manifest.lock?.variants?.[v.name]?.packages ?? [] },
      };
      const vdebs = await source.fetch(vmanifest, {
        mirrors: opts.mirrors,
        cacheDir: opts.cacheDir,
        aptRoot: opts.aptRoot,
        progress: !opts.quiet,
      });
      await source.unpack(vroot, vdebs, {
        cacheDir: opts.cacheDir ?? defaultCacheDir(),
        unpinnedData: opts.dataCache ?? false,
      });
      const vkeep = new Set([...vroot.entries.keys()].filter((p) => vroot.entries.get(p)!.origin !== 'layout'));
      for (const p of source.writeDatabase(vroot, vkeep)) vkeep.add(p);
      // Every layer of the main image, byte for byte, then the variant's packages as one layer.
      const vwritten = await writeLayeredImage(
        {
          ...spec,
          tag: `${manifest.tag}-${v.name}`,
          config: v.entrypoint ? { ...config, entrypoint: v.entrypoint, cmd: undefined } : config,
        },
        [...groups, { name: `variant ${v.name}`, entries: layerEntries(vroot, vkeep) }],
        vout,
        {
          compression: manifest.compression,
          workDir: mkdtempSync(join(stagingDir, `variant-${v.name}-layers-`)),
          layerCache,
        },
      );
      variants.push({
        name: v.name,
        output: vwritten.output,
        imageId: vwritten.imageId,
        manifestDigest: vwritten.manifestDigest,
        packages: vdebs.map((d) => d.name),
      });
    }
    if (opts.sbomPath) writeFileAtomic(resolve(opts.sbomPath), sbom.bytes());
    if (opts.reportPath && report)
      writeFileAtomic(resolve(opts.reportPath), Buffer.from(JSON.stringify(report, null, 2) + '\n'));
    return {
      imageId: written.imageId,
      manifestDigest: written.manifestDigest,
      output: written.output,
      sizeBytes: written.sizeBytes,
      name: manifest.name,
      tag: manifest.tag,
      manifestSha256: manifest.origin.sha256,
      layers: written.layers,
      packages: pinned.length,
      files: written.layerEntries,
      minimize: report,
      ...(variants.length ? { variants } : {}),
      warnings: [],
    };
  } catch (e) {
    // A machine failure not yet named (most likely the work folder filling up).
    throw asEnvironmentError(e, `building in the work folder ${stagingDir}`);
  } finally {
    hashThread?.close();
    rmSync(stagingDir, { recursive: true, force: true });
    releasePackages();
    unregister();
  }
}

/** The cached package root's facts file of ELF headers read by the minimizer (see KeepMemo.seed). */
const ELF_FACTS = 'elf';

/** Keep sets builds ended with over a cached package root, by manifest (its name, config, minimize): at most 8. */
const KEEP_FACTS = 'keep-sets';

function keepGuesses(
  facts: RootFacts,
  manifest: Manifest,
): { guess: Set<string> | undefined; keep(keep: Set<string>): void } {
  const key = sha256Hex(
    canonicalJson({
      name: manifest.name,
      config: manifest.config,
      minimize: manifest.minimize,
      files: manifest.files.map((f) => f.dest),
    }),
  );
  const read = facts.read(KEEP_FACTS);
  const all: Record<string, unknown> =
    typeof read === 'object' && read !== null && !Array.isArray(read) ? { ...read } : {};
  const known = all[key];
  const listed = Array.isArray(known) && known.every((p) => typeof p === 'string') ? (known as string[]) : undefined;
  return {
    guess: listed ? new Set(listed) : undefined,
    keep(keep) {
      const sorted = [...keep].sort();
      if (listed && listed.length === sorted.length && listed.every((p, i) => p === sorted[i])) return;
      delete all[key];
      const others = Object.keys(all).slice(-7);
      facts.write(KEEP_FACTS, { ...Object.fromEntries(others.map((k) => [k, all[k]])), [key]: sorted });
    },
  };
}

/** The proof rounds that passed over a cached package root, by proofKey (at most 256 kept). */
function provenIn(facts: RootFacts): { has(key: string): boolean; add(key: string): void } {
  const read = facts.read('proofs');
  const keys = new Set(Array.isArray(read) ? read.filter((k): k is string => typeof k === 'string') : []);
  return {
    has: (key) => keys.has(key),
    add(key) {
      if (keys.size >= 256) keys.clear();
      keys.add(key);
      facts.write('proofs', [...keys].sort());
    },
  };
}

/** The sandbox the checks run in: the tracer binary and the kernel. */
function sandboxIdentity(): string {
  let tracer = 'missing';
  try {
    tracer = sha256Hex(readFileSync(tracerPath()));
  } catch {
    // no tracer: the checks cannot run anyway, and say so
  }
  return `${tracer} ${osRelease()}`;
}

/**
 * The digests of layers of a cached package root's files (layerKey → diff_id
 * and size), kept with the root: as trustworthy as the root itself.
 */
function knownLayersIn(facts: RootFacts): KnownLayers {
  const read = facts.read('layers');
  const known: Record<string, [string, number]> =
    typeof read === 'object' && read !== null && !Array.isArray(read) ? (read as Record<string, [string, number]>) : {};
  return {
    get(key) {
      const v = known[key];
      return Array.isArray(v) && typeof v[0] === 'string' && /^[0-9a-f]{64}$/.test(v[0]) && Number.isSafeInteger(v[1])
        ? { sha256: v[0], size: v[1] }
        : undefined;
    },
    set(key, layer) {
      // One key per keep set of these packages: a root minimized many ways starts over past a bound.
      if (Object.keys(known).length >= 256) for (const k of Object.keys(known)) delete known[k];
      known[key] = [layer.sha256, layer.size];
      facts.write('layers', known);
    },
  };
}

/**
 * MKIMG_TIMINGS=1: every progress line also goes to stderr with the milliseconds since the
 * process started, terminal or not (where a build spends its time; bench/loop.mjs).
 */
function withTimings(progress: (line: string) => void): (line: string) => void {
  if (!process.env.MKIMG_TIMINGS) return progress;
  return (line) => {
    process.stderr.write(`mkimg: ${Math.round(performance.now())} ms: ${line}\n`);
    progress(line);
  };
}

function checkLock(manifest: Manifest): void {
  const status = lockIsCurrent(manifest);
  if (!status.ok) {
    throw new MkimgError(
      'lock',
      `${manifest.origin.path}: the lock does not match the requested packages: ${status.problems.join('; ')}`,
      {
        hint: `run \`mkimg lock ${manifest.origin.path}\` to pin them`,
      },
    );
  }
}

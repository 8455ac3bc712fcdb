/**
 * resolveLock: resolve the manifest's requested packages against its sources
 * (verified InRelease → Packages → sha256 chain) and pin the closure, plus a
 * sha256 for every files: input. The lock records suites, never mirror URLs.
 */
import { parse } from 'yaml';
import type { Lock, LockedFile, LockedPackage, Manifest } from '../manifest/types.js';
import { loadSources, type SuiteInfo } from '../debian/repository.js';
import { Universe, resolveClosure, type ResolveRequest } from '../debian/resolver.js';
import { inputDigest } from '../stage/files.js';
import { readDebControl, parseControlStanza } from '../debian/deb/deb.js';
import { packageRecordFromControl, type PackageRecord } from '../debian/packages.js';
import { sha256File } from '../util/digest.js';
import { fetchPinnedDebs } from '../debian/fetch-debs.js';
import { defaultCacheDir } from '../fetch/cache.js';
import { dataArchiveSha256 } from '../stage/extract.js';
import { pool } from '../util/pool.js';
import { MkimgError } from '../util/errors.js';
import { forArchitecture, isMultiArch } from '../manifest/platform.js';

export interface ResolveLockOptions {
  mirrors?: Record<string, string>;
  aptRoot?: string;
  cacheDir?: string;
  env?: NodeJS.ProcessEnv;
  now?: Date;
  /** Told which mirror served each suite and who signed it (for a note on the terminal). */
  onSuite?: (info: SuiteInfo) => void;
  /** Download progress on stderr (shown only on a terminal). */
  progress?: boolean;
}

export async function resolveLock(manifest: Manifest, opts: ResolveLockOptions = {}): Promise<Lock> {
  if (!isMultiArch(manifest))
    return { version: 1, packages: await resolvePackages(manifest, opts), files: await pinFiles(manifest) };
  // One closure per architecture, resolved from the same verified indexes of each.
  const architectures: Record<string, { packages: LockedPackage[] }> = {};
  for (const arch of manifest.architectures) {
    try {
      architectures[arch] = { packages: await resolvePackages(forArchitecture(manifest, arch), opts) };
    } catch (e) {
      if (e instanceof MkimgError && e.kind === 'resolve') {
        throw new MkimgError('resolve', `${arch}: ${e.message}`, {
          hint: `${e.hint ? e.hint + '; ' : ''}a package that exists on some architectures only can be limited to them: packages: - {name: NAME, architectures: [amd64]}`,
        });
      }
      throw e;
    }
  }
  return { version: 1, packages: [], architectures, files: await pinFiles(manifest) };
}

async function resolvePackages(manifest: Manifest, opts: ResolveLockOptions): Promise<LockedPackage[]> {
  const requests: ResolveRequest[] = [];
  for (const p of manifest.packages) if (p.kind === 'name') requests.push({ name: p.name, version: p.version });
  // Local .debs: their pins are checked, and (when there are sources) their
  // dependencies are resolved too, and they satisfy others' dependencies.
  const locals: PackageRecord[] = [];
  if (manifest.sources.length > 0) {
    for (const p of manifest.packages) if (p.kind === 'deb') locals.push(await localRecord(p.path, p.sha256));
  }
  let packages: LockedPackage[] = [];
  if (requests.length > 0 || locals.some((l) => l.depends.length > 0 || l.preDepends.length > 0)) {
    const { records, suites } = await loadSources(manifest.sources, {
      arch: manifest.architecture,
      mirrors: opts.mirrors,
      aptRoot: opts.aptRoot,
      cacheDir: opts.cacheDir,
      env: opts.env,
      now: opts.now,
    });
    for (const info of suites) opts.onSuite?.(info);
    const localSet = new Set(locals);
    const closure = resolveClosure(new Universe(records, manifest.architecture), requests, {
      preinstalled: locals,
    }).filter((r) => !localSet.has(r));
    packages = closure.map((r) => ({
      name: r.name,
      version: r.version,
      architecture: r.architecture,
      suite: r.suite,
      filename: r.filename,
      sha256: r.sha256,
      size: r.size,
    }));
    packages = await pinDataArchives(packages, manifest, opts);
  }
  return packages;
}

/**
 * Fetch every pinned .deb (verified against the Packages sha256, into the
 * cache) and pin the sha256 of its decompressed data archive, so builds can
 * trust cached unpacked archives as much as the .debs.
 */
async function pinDataArchives(
  packages: LockedPackage[],
  manifest: Manifest,
  opts: ResolveLockOptions,
): Promise<LockedPackage[]> {
  const paths = await fetchPinnedDebs(packages, {
    sources: manifest.sources,
    mirrors: opts.mirrors,
    cacheDir: opts.cacheDir,
    aptRoot: opts.aptRoot,
    env: opts.env,
    progress: opts.progress,
  });
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const out = packages.map((p) => ({ ...p }));
  // Two at a time: decompression is CPU work on the thread pool.
  await pool(out, 2, async (p) => {
    p.dataSha256 = await dataArchiveSha256(paths.get(p.name)!, p.sha256, cacheDir);
  });
  return out;
}

async function localRecord(path: string, sha256: string): Promise<PackageRecord> {
  const got = await sha256File(path);
  if (got.hex !== sha256) {
    throw new MkimgError('input', `${path}: sha256 is ${got.hex}, the manifest pins ${sha256}`, {
      hint: 'if the new file is intended, update its sha256 in the manifest',
    });
  }
  const control = await readDebControl(path);
  return packageRecordFromControl(
    parseControlStanza(control.control),
    { filename: path, sha256, size: got.size },
    { suite: 'local', rank: -1 },
  );
}

async function pinFiles(manifest: Manifest): Promise<LockedFile[]> {
  if (manifest.files.length === 0) return [];
  // The lock keys files by src as written in the manifest, so read the raw text.
  const raw = parse(manifest.origin.bytes.toString('utf8')) as { files?: { src?: string }[] } | null;
  const out: LockedFile[] = [];
  for (let i = 0; i < manifest.files.length; i++) {
    const f = manifest.files[i]!;
    const written = raw?.files?.[i]?.src ?? f.src;
    const hex = await inputDigest(f.src, written);
    if (!out.some((o) => o.src === written)) out.push({ src: written, sha256: hex });
  }
  return out;
}

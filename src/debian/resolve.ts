/**
 * The Debian closure of a manifest's requests for one architecture: the
 * verified indexes (InRelease → Packages → sha256) of its sources, the
 * resolver's choices, every pinned .deb fetched and its decompressed data
 * archive's sha256 pinned too. The lock records suites, never mirror URLs.
 */
import type { LockedPackage, Manifest } from '../manifest/types.js';
import type { ResolveOptions } from '../packages/source.js';
import { defaultCacheDir } from '../fetch/cache.js';
import { MkimgError } from '../util/errors.js';
import { sha256File } from '../util/digest.js';
import { pool } from '../util/pool.js';
import { parseControlStanza, readDebControl } from './deb/deb.js';
import { fetchPinnedDebs } from './fetch-debs.js';
import { packageRecordFromControl, type PackageRecord } from './packages.js';
import { loadSources } from './repository.js';
import { resolveClosure, Universe, type ResolveRequest } from './resolver.js';
import { dataArchiveSha256 } from './unpack.js';

export async function resolvePackages(manifest: Manifest, opts: ResolveOptions): Promise<LockedPackage[]> {
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
    for (const s of suites)
      opts.onSource?.(
        `${s.suite}: ${s.url} (${s.mirrorFrom})${s.release.signedBy.length ? `, signed by ${s.release.signedBy.join(', ')}` : ', UNSIGNED (allowUnsigned)'}`,
      );
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
  opts: ResolveOptions,
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

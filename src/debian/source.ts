/**
 * Debian as a package source (src/packages/source.ts): resolve against
 * verified suites, fetch pinned .debs into the content cache (local .debs
 * checked against their pins), unpack data archives without maintainer
 * scripts, compile the Python byte code their postinsts would have, and write
 * /var/lib/dpkg/status.d for scanners.
 */
import type { FetchedPackage, FetchOptions, PackageSource, PinnedPackage } from '../packages/source.js';
import type { Manifest } from '../manifest/types.js';
import { MkimgError } from '../util/errors.js';
import { sha256File } from '../util/digest.js';
import { bytecodePlans, compileBytecode } from './bytecode.js';
import { describeInstalled } from './describe.js';
import { writeStatusD } from './statusd.js';
// Resolving, fetching and unpacking (the resolver, the HTTP client, the .deb readers) are loaded
// when first used: a warm build (its packages unpacked in the cache) and a lock that re-pins
// files: inputs only use none of them.

/** Local .debs (`file:PATH`) in manifest order, then pinned .debs by name: the unpack order. */
function pinnedDebs(manifest: Manifest): PinnedPackage[] {
  const out: PinnedPackage[] = [];
  for (const p of manifest.packages) if (p.kind === 'deb') out.push({ name: `file:${p.path}`, sha256: p.sha256 });
  const pinned = [...(manifest.lock?.packages ?? [])].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const p of pinned)
    out.push({ name: p.name, sha256: p.sha256, ...(p.dataSha256 ? { dataSha256: p.dataSha256 } : {}) });
  return out;
}

/** pinnedDebs, each brought into the cache (or found on disk) and verified. */
async function fetchDebs(manifest: Manifest, opts: FetchOptions): Promise<FetchedPackage[]> {
  const pinned = manifest.lock?.packages ?? [];
  let paths = new Map<string, string>();
  if (pinned.length > 0) {
    opts.onProgress?.(`fetch: ${pinned.length} packages`);
    const { fetchPinnedDebs } = await import('./fetch-debs.js');
    paths = await fetchPinnedDebs(pinned, {
      sources: manifest.sources,
      mirrors: opts.mirrors,
      cacheDir: opts.cacheDir,
      aptRoot: opts.aptRoot,
      progress: opts.progress,
    });
  }
  const out: FetchedPackage[] = pinnedDebs(manifest).map((p) => ({
    ...p,
    path: p.name.startsWith('file:') ? p.name.slice('file:'.length) : paths.get(p.name)!,
  }));
  // Local .debs: the pin is checked before anything is unpacked.
  for (const d of out) {
    if (!d.name.startsWith('file:')) continue;
    const actual = (await sha256File(d.path)).hex;
    if (actual !== d.sha256) {
      throw new MkimgError('input', `${d.path}: sha256 is ${actual}, the manifest pins ${d.sha256}`, {
        hint: 'if the new file is intended, update its sha256 in the manifest',
      });
    }
  }
  return out;
}

export const debianSource: PackageSource = {
  async resolve(manifest, opts) {
    const { resolvePackages } = await import('./resolve.js');
    return resolvePackages(manifest, opts);
  },
  pinned: pinnedDebs,
  fetch: fetchDebs,
  async unpack(root, packages, opts) {
    const { unpackDebs } = await import('./unpack.js');
    await unpackDebs(root, packages, opts);
  },
  async generate(root, opts) {
    const plans = bytecodePlans(root);
    if (plans.length === 0) return [];
    opts.onProgress?.(`staging: compiling Python byte code (${plans.map((p) => p.interpreter).join(', ')})`);
    const runIn = root.kind === 'disk' && root.lowerDirs.length === 0 ? root.dir : await opts.runnable();
    return compileBytecode(root, plans, { architecture: opts.architecture, runIn });
  },
  writeDatabase: writeStatusD,
  describe: describeInstalled,
};

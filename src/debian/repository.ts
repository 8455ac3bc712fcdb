/**
 * The repository client: for every source and suite (in manifest order),
 * choose a mirror, fetch and verify InRelease (or, only with allowUnsigned,
 * Release), then fetch and check the Packages indexes for each component and
 * for ARCH and `all`, and parse them into PackageRecords ranked by order.
 */
import type { Source } from '../manifest/types.js';
import { chooseMirror, type MirrorOptions } from './mirrors.js';
import { httpGet, httpStatusOf } from '../fetch/http.js';
import { BlobCache } from '../fetch/cache.js';
import { MkimgError } from '../util/errors.js';
import { readKeyring, verifyInRelease, parseReleaseChecked, type Release } from './release.js';
import { fetchPackagesIndex, parsePackagesIndex, type PackageRecord } from './packages.js';

export interface LoadOptions extends MirrorOptions {
  arch: string;
  cacheDir?: string;
  now?: Date;
}

export interface SuiteInfo {
  suite: string;
  url: string;
  mirrorFrom: string;
  release: Release;
  rank: number;
}

export async function loadSuite(
  source: Source,
  suite: string,
  rank: number,
  opts: LoadOptions,
): Promise<{ info: SuiteInfo; records: PackageRecord[] }> {
  const mirror = chooseMirror(source, suite, opts);
  const base = mirror.url;
  const dists = `${base}/dists/${suite}`;
  let release: Release;
  const notFound = (what: string) =>
    new MkimgError(
      'repository',
      `${dists}/${what} not found (HTTP 404): the mirror (${mirror.from}) does not serve suite "${suite}"`,
      {
        hint: `check the suite name and the mirror URL, or point at another mirror with --mirror ${suite}=URL`,
        details: { suite, url: `${dists}/${what}` },
      },
    );
  if (source.allowUnsigned) {
    let text: string;
    try {
      text = (await httpGet(`${dists}/Release`)).toString('utf8');
    } catch (e) {
      if (httpStatusOf(e) === 404) throw notFound('Release');
      throw e;
    }
    release = parseReleaseChecked(text, { suite, url: `${dists}/Release` }, opts.now);
  } else {
    if (!source.keyring) {
      throw new MkimgError('manifest', `the source for suite "${suite}" has no keyring: and is not allowUnsigned`, {
        hint: 'add keyring: with the OpenPGP keys that sign the repository (keys/ ships the Debian ones)',
      });
    }
    const keys = await readKeyring(source.keyring);
    let text: string;
    try {
      text = (await httpGet(`${dists}/InRelease`)).toString('utf8');
    } catch (e) {
      if (httpStatusOf(e) === 404) {
        throw new MkimgError(
          'repository',
          `${dists}/InRelease not found (HTTP 404): suite "${suite}" has no signed InRelease at this mirror (${mirror.from})`,
          {
            hint: `check the suite name and the mirror, or --mirror ${suite}=URL; an unsigned repository needs allowUnsigned: true on its source`,
            details: { suite, url: `${dists}/InRelease` },
          },
        );
      }
      throw e;
    }
    release = await verifyInRelease(text, keys, {
      suite,
      url: `${dists}/InRelease`,
      keyringPath: source.keyring,
      now: opts.now,
    });
  }
  const cache = new BlobCache(opts.cacheDir);
  const records: PackageRecord[] = [];
  for (const component of source.components) {
    let found = false;
    // Like apt: binary-all only when the Release lists "all" among its Architectures
    // (otherwise Architecture: all packages are in binary-ARCH).
    const withAll = release.architectures.length === 0 || release.architectures.includes('all');
    for (const arch of withAll ? [opts.arch, 'all'] : [opts.arch]) {
      const idx = await fetchPackagesIndex({ baseUrl: base, suite, component, arch, release, cache });
      if (!idx) continue;
      found = true;
      records.push(
        ...parsePackagesIndex(idx.text, {
          suite,
          rank,
          notAutomatic: release.notAutomatic && !release.butAutomaticUpgrades,
          url: idx.url,
        }),
      );
    }
    if (!found) {
      throw new MkimgError(
        'repository',
        `the Release of suite "${suite}" (${dists}) lists no Packages index for component "${component}" and architecture ${opts.arch}`,
        {
          hint: `check components: of the source (the Release offers: ${release.components.join(' ') || 'none listed'}) and the manifest architecture`,
          details: { suite, url: dists },
        },
      );
    }
  }
  return { info: { suite, url: base, mirrorFrom: mirror.from, release, rank }, records };
}

/** Load every (source, suite) in parallel; ranks follow manifest order. */
export async function loadSources(
  sources: Source[],
  opts: LoadOptions,
): Promise<{ suites: SuiteInfo[]; records: PackageRecord[] }> {
  const jobs: Promise<{ info: SuiteInfo; records: PackageRecord[] }>[] = [];
  let rank = 0;
  for (const s of sources) for (const suite of s.suites) jobs.push(loadSuite(s, suite, rank++, opts));
  const done = await Promise.all(jobs);
  return { suites: done.map((d) => d.info), records: done.flatMap((d) => d.records) };
}

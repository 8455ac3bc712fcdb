/**
 * fetchPinnedDebs: bring every pinned .deb into the content-addressed cache.
 * The lock's sha256 (inside the signed manifest) is the root of trust for each
 * .deb; a warm cache needs no network at all (no mirror lookup either).
 */
import type { LockedPackage, Source } from '../manifest/types.js';
import { MkimgError } from '../util/errors.js';
import { pool } from '../util/pool.js';
import { BlobCache } from '../fetch/cache.js';
import { httpGetToFile, httpStatusOf } from '../fetch/http.js';
import { chooseMirror } from './mirrors.js';

export interface FetchDebsOptions {
  sources: Source[];
  mirrors?: Record<string, string>;
  cacheDir?: string;
  aptRoot?: string;
  env?: NodeJS.ProcessEnv;
  /** Progress on stderr (only shown when stderr is a TTY). */
  progress?: boolean;
  concurrency?: number;
}

/** name → path of the verified .deb in the cache. */
export async function fetchPinnedDebs(pkgs: LockedPackage[], opts: FetchDebsOptions): Promise<Map<string, string>> {
  const cache = new BlobCache(opts.cacheDir);
  const out = new Map<string, string>();
  const missing: LockedPackage[] = [];
  for (const p of pkgs) {
    const hit = await cache.lookup(p.sha256, p.size);
    if (hit) out.set(p.name, hit);
    else missing.push(p);
  }
  if (missing.length === 0) return out;

  const sourceFor = (suite: string): Source => {
    const s = opts.sources.find((x) => x.suites.includes(suite));
    if (!s) {
      throw new MkimgError(
        'lock',
        `the lock pins packages from suite "${suite}", which no source of the manifest names`,
        {
          hint: 'add the suite back to sources:, or run mkimg lock again',
          details: { suite },
        },
      );
    }
    return s;
  };
  const urlOf = (p: LockedPackage) =>
    chooseMirror(sourceFor(p.suite), p.suite, { mirrors: opts.mirrors, aptRoot: opts.aptRoot, env: opts.env }).url +
    '/' +
    p.filename;
  // Resolve every URL first so a configuration error surfaces before any download.
  const urls = new Map(missing.map((p) => [p.name, urlOf(p)]));

  const showProgress = Boolean(opts.progress) && Boolean(process.stderr.isTTY) && !process.env.CI;
  const total = missing.reduce((a, p) => a + p.size, 0);
  const live = new Map<string, number>();
  let doneBytes = 0;
  let doneCount = 0;
  let lastDraw = 0;
  const draw = (force = false) => {
    if (!showProgress) return;
    const now = Date.now();
    if (!force && now - lastDraw < 100) return;
    lastDraw = now;
    let inflight = 0;
    for (const v of live.values()) inflight += v;
    const mb = (n: number) => (n / 1048576).toFixed(1);
    process.stderr.write(
      `\rfetch: ${doneCount}/${missing.length} packages, ${mb(doneBytes + inflight)}/${mb(total)} MiB\x1b[K`,
    );
  };

  const one = async (p: LockedPackage) => {
    const url = urls.get(p.name)!;
    const tmp = await cache.tempPath();
    try {
      let got;
      try {
        got = await httpGetToFile(url, tmp, { maxBytes: p.size, onProgress: (n) => (live.set(p.name, n), draw()) });
      } catch (e) {
        if (httpStatusOf(e) === 404) {
          throw new MkimgError(
            'repository',
            `${p.name} ${p.version}: the mirror no longer serves ${p.filename} (HTTP 404 at ${url})`,
            {
              hint: `point suite ${p.suite} at a mirror that still has this version, e.g. a snapshot archive: --mirror ${p.suite}=URL (or MKIMG_MIRROR_${p.suite.toUpperCase().replace(/[-.]/g, '_')}=URL); or run mkimg lock to move to the current versions`,
              details: { package: p.name, filename: p.filename, url, status: 404 },
            },
          );
        }
        throw e;
      }
      if (got.sha256 !== p.sha256 || got.size !== p.size) {
        throw new MkimgError(
          'input',
          `${p.name} ${p.version}: ${url} served ${got.size} bytes with sha256 ${got.sha256}, but the lock pins ${p.size} bytes with sha256 ${p.sha256}`,
          {
            hint: 'the mirror serves different bytes for this file (tampered, or a rebuilt package); use another mirror with --mirror SUITE=URL, or relock if the change is expected',
            details: { package: p.name, filename: p.filename, url },
          },
        );
      }
      out.set(p.name, await cache.commit(tmp, p.sha256));
      live.delete(p.name);
      doneBytes += p.size;
      doneCount++;
      draw();
    } finally {
      await cache.discard(tmp);
    }
  };

  try {
    await pool(missing, Math.max(1, opts.concurrency ?? 6), one);
  } finally {
    if (showProgress) {
      draw(true);
      process.stderr.write('\n');
    }
  }
  return out;
}

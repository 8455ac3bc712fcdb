/**
 * Packages indexes: fetch dists/SUITE/COMPONENT/binary-ARCH/Packages(.xz|.gz|)
 * as listed in the verified Release table (by-hash when the Release offers it),
 * check size and sha256, decompress, and parse the stanzas the resolver needs.
 */
import { gunzipSync } from 'node:zlib';
import { readFile } from 'node:fs/promises';
import { xz } from '@napi-rs/lzma';
import type { Release } from './release.js';
import { parseRelations, parseRelation, type Relation, type RelationList } from './relations.js';
import { httpGet, httpStatusOf } from '../fetch/http.js';
import type { BlobCache } from '../fetch/cache.js';
import { sha256Hex } from '../util/digest.js';
import { MkimgError } from '../util/errors.js';

export interface PackageRecord {
  name: string;
  version: string;
  architecture: string;
  multiArch?: string;
  essential: boolean;
  priority?: string;
  depends: RelationList;
  preDepends: RelationList;
  provides: Relation[];
  conflicts: RelationList;
  breaks: RelationList;
  filename: string;
  sha256: string;
  size: number;
  /** Suite it came from. */
  suite: string;
  /** Order of its (source, suite) in the manifest: lower wins ties. */
  rank: number;
  /** From a NotAutomatic suite (apt pin 1): chosen only when nothing else fits. */
  notAutomatic: boolean;
}

const WANTED = new Set([
  'package', 'version', 'architecture', 'multi-arch', 'essential', 'priority', 'depends', 'pre-depends',
  'provides', 'conflicts', 'breaks', 'filename', 'size', 'sha256',
]);

export interface IndexContext {
  suite: string;
  rank: number;
  notAutomatic?: boolean;
  /** For messages: where the index came from. */
  url?: string;
}

/** Parse a Packages file. Stanzas without Filename/SHA256 are refused (nothing to pin). */
export function parsePackagesIndex(text: string, ctx: IndexContext): PackageRecord[] {
  const out: PackageRecord[] = [];
  let f: Record<string, string> = {};
  let last: string | null = null;
  const finish = () => {
    if (!f.package) {
      f = {};
      return;
    }
    const where = `package ${f.package} ${f.version ?? ''} in suite "${ctx.suite}"${ctx.url ? ` (${ctx.url})` : ''}`;
    if (!f.version || !f.architecture || !f.filename || !f.sha256 || !f.size) {
      throw new MkimgError('repository', `${where} lacks Version, Architecture, Filename, Size or SHA256 in the Packages index`, { details: { suite: ctx.suite } });
    }
    try {
      out.push({
        name: f.package,
        version: f.version,
        architecture: f.architecture,
        multiArch: f['multi-arch'],
        essential: (f.essential ?? '').toLowerCase() === 'yes',
        priority: f.priority,
        depends: parseRelations(f.depends),
        preDepends: parseRelations(f['pre-depends']),
        provides: f.provides ? f.provides.split(',').filter((x) => x.trim()).map(parseRelation) : [],
        conflicts: parseRelations(f.conflicts),
        breaks: parseRelations(f.breaks),
        filename: f.filename,
        sha256: f.sha256.toLowerCase(),
        size: Number(f.size),
        suite: ctx.suite,
        rank: ctx.rank,
        notAutomatic: Boolean(ctx.notAutomatic),
      });
    } catch (e) {
      throw new MkimgError('repository', `${where}: ${(e as Error).message}`, { details: { suite: ctx.suite } });
    }
    f = {};
  };
  let start = 0;
  const n = text.length;
  while (start <= n) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = n;
    let line = text.slice(start, end);
    start = end + 1;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (line.length === 0 || line.trim() === '') {
      finish();
      last = null;
      if (end === n) break;
      continue;
    }
    const c0 = line.charCodeAt(0);
    if (c0 === 32 || c0 === 9) {
      if (last) f[last] += ' ' + line.trim();
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) {
      last = null;
      continue;
    }
    const name = line.slice(0, colon).toLowerCase();
    if (WANTED.has(name)) {
      f[name] = line.slice(colon + 1).trim();
      last = name;
    } else last = null;
    if (end === n) break;
  }
  finish();
  return out;
}

export interface FetchIndexOptions {
  baseUrl: string; // mirror root, no trailing slash
  suite: string;
  component: string;
  arch: string;
  release: Release;
  cache?: BlobCache;
}

/**
 * Fetch one Packages index and return its decompressed text, or undefined when
 * the Release table lists no Packages file for this component/arch.
 */
export async function fetchPackagesIndex(o: FetchIndexOptions): Promise<{ text: string; url: string } | undefined> {
  const dir = `${o.component}/binary-${o.arch}`;
  for (const ext of ['.xz', '.gz', '']) {
    const rel = `${dir}/Packages${ext}`;
    const entry = o.release.sha256.get(rel);
    if (!entry) continue;
    const url = `${o.baseUrl}/dists/${o.suite}/${rel}`;
    let data: Buffer | undefined;
    const cached = o.cache ? await o.cache.lookup(entry.sha256, entry.size) : undefined;
    if (cached) data = await readFile(cached);
    else {
      if (o.release.acquireByHash) {
        try {
          data = await httpGet(`${o.baseUrl}/dists/${o.suite}/${dir}/by-hash/SHA256/${entry.sha256}`);
        } catch (e) {
          if (httpStatusOf(e) !== 404) throw e;
        }
      }
      if (!data) {
        try {
          data = await httpGet(url);
        } catch (e) {
          if (httpStatusOf(e) === 404 && ext !== '') continue; // try the next compression the Release lists
          throw e;
        }
      }
      const got = sha256Hex(data);
      if (data.length !== entry.size || got !== entry.sha256) {
        throw new MkimgError('repository', `${url} does not match the signed Release of suite "${o.suite}": expected ${entry.size} bytes sha256 ${entry.sha256}, got ${data.length} bytes sha256 ${got}`, {
          hint: 'the mirror may be mid-update (retry later) or tampered with; try another mirror with --mirror SUITE=URL',
          details: { suite: o.suite, url },
        });
      }
      if (o.cache) await o.cache.putBytes(data, entry.sha256);
    }
    let text: Buffer;
    try {
      text = ext === '.xz' ? await xz.decompress(data) : ext === '.gz' ? gunzipSync(data) : data;
    } catch (e) {
      throw new MkimgError('repository', `cannot decompress ${url}: ${(e as Error).message}`, { details: { suite: o.suite, url } });
    }
    return { text: text.toString('utf8'), url };
  }
  return undefined;
}

/**
 * Packages indexes: fetch dists/SUITE/COMPONENT/binary-ARCH/Packages(.xz|.gz|)
 * as listed in the verified Release table (by-hash when the Release offers it),
 * check size and sha256, decompress, and parse the stanzas the resolver needs.
 */
import { readFile } from 'node:fs/promises';
import { decompress, formatBytes } from './deb/decompress.js';
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

const WANTED = new Map<string, string>(
  [
    'Package',
    'Version',
    'Architecture',
    'Multi-Arch',
    'Essential',
    'Priority',
    'Depends',
    'Pre-Depends',
    'Provides',
    'Conflicts',
    'Breaks',
    'Filename',
    'Size',
    'SHA256',
  ].map((n) => [n, n.toLowerCase()]),
);
const WANTED_LOWER = new Set(WANTED.values());

export interface IndexContext {
  suite: string;
  rank: number;
  notAutomatic?: boolean;
  /** For messages: where the index came from. */
  url?: string;
}

/**
 * One Packages stanza. Relationship fields are parsed on first use: an index
 * has tens of thousands of stanzas and the resolver looks at a few dozen.
 */
class Record_ implements PackageRecord {
  name: string;
  version: string;
  architecture: string;
  multiArch?: string;
  essential: boolean;
  priority?: string;
  filename: string;
  sha256: string;
  size: number;
  suite: string;
  rank: number;
  notAutomatic: boolean;
  private readonly raw: Record<string, string>;
  private readonly where: string;
  private cache = new Map<string, RelationList>();
  private providesCache?: Relation[];

  constructor(f: Record<string, string>, ctx: IndexContext, where: string) {
    this.name = f.package!;
    this.version = f.version!;
    this.architecture = f.architecture!;
    this.multiArch = f['multi-arch'];
    this.essential = (f.essential ?? '').toLowerCase() === 'yes';
    this.priority = f.priority;
    this.filename = f.filename!;
    this.sha256 = f.sha256!.toLowerCase();
    this.size = Number(f.size);
    this.suite = ctx.suite;
    this.rank = ctx.rank;
    this.notAutomatic = Boolean(ctx.notAutomatic);
    this.raw = f;
    this.where = where;
  }

  private rel(field: string): RelationList {
    let r = this.cache.get(field);
    if (!r) {
      try {
        r = parseRelations(this.raw[field]);
      } catch (e) {
        throw new MkimgError('repository', `${this.where}: ${field}: ${(e as Error).message}`, {
          details: { suite: this.suite },
        });
      }
      this.cache.set(field, r);
    }
    return r;
  }

  get depends(): RelationList {
    return this.rel('depends');
  }
  get preDepends(): RelationList {
    return this.rel('pre-depends');
  }
  get conflicts(): RelationList {
    return this.rel('conflicts');
  }
  get breaks(): RelationList {
    return this.rel('breaks');
  }
  get provides(): Relation[] {
    if (!this.providesCache) {
      const v = this.raw.provides;
      try {
        this.providesCache = v
          ? v
              .split(',')
              .filter((x) => x.trim())
              .map(parseRelation)
          : [];
      } catch (e) {
        throw new MkimgError('repository', `${this.where}: provides: ${(e as Error).message}`, {
          details: { suite: this.suite },
        });
      }
    }
    return this.providesCache;
  }
}

/**
 * A PackageRecord from a control stanza (e.g. a local .deb's DEBIAN/control),
 * with the pin given separately. Field names match case-insensitively.
 */
export function packageRecordFromControl(
  fields: Record<string, string>,
  pin: { filename: string; sha256: string; size: number },
  ctx: IndexContext,
): PackageRecord {
  const f: Record<string, string> = {};
  for (const [k, v] of Object.entries(fields)) {
    const key = k.toLowerCase();
    if (WANTED_LOWER.has(key)) f[key] = v.replace(/\n\s*/g, ' ').trim();
  }
  f.filename = pin.filename;
  f.sha256 = pin.sha256;
  f.size = String(pin.size);
  const where = `${pin.filename}`;
  if (!f.package || !f.version || !f.architecture) {
    throw new MkimgError('input', `${where}: its control file lacks Package, Version or Architecture`);
  }
  return new Record_(f, ctx, where);
}

/** Parse a Packages file. Stanzas without Filename/SHA256 are refused (nothing to pin). */
export function parsePackagesIndex(text: string, ctx: IndexContext): PackageRecord[] {
  const out: PackageRecord[] = [];
  let f: Record<string, string> = {};
  let any = false;
  let last: string | null = null;
  const finish = () => {
    if (!any) return;
    any = false;
    const cur = f;
    f = {};
    if (!cur.package) return;
    const where = `package ${cur.package} ${cur.version ?? ''} in suite "${ctx.suite}"${ctx.url ? ` (${ctx.url})` : ''}`;
    if (!cur.version || !cur.architecture || !cur.filename || !cur.sha256 || !cur.size) {
      throw new MkimgError(
        'repository',
        `${where} lacks Version, Architecture, Filename, Size or SHA256 in the Packages index`,
        { details: { suite: ctx.suite } },
      );
    }
    out.push(new Record_(cur, ctx, where));
  };
  const n = text.length;
  let start = 0;
  while (start < n) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = n;
    let lineEnd = end;
    if (lineEnd > start && text.charCodeAt(lineEnd - 1) === 13) lineEnd--;
    const c0 = text.charCodeAt(start);
    if (lineEnd === start) {
      finish();
      last = null;
    } else if (c0 === 32 || c0 === 9) {
      if (last !== null) f[last] += ' ' + text.slice(start, lineEnd).trim();
      else if (text.slice(start, lineEnd).trim() === '') {
        finish();
      }
    } else {
      const colon = text.indexOf(':', start);
      if (colon > start && colon < lineEnd) {
        const name = text.slice(start, colon);
        const key = WANTED.get(name) ?? (WANTED_LOWER.has(name.toLowerCase()) ? name.toLowerCase() : undefined);
        if (key !== undefined) {
          f[key] = text.slice(colon + 1, lineEnd).trim();
          last = key;
        } else last = null;
        any = true;
      } else last = null;
    }
    start = end + 1;
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
 * The most a Packages index may decompress to (SPEC §4 "Limits") when the
 * Release does not list the uncompressed file's size; when it does, that size
 * is the bound. A Debian main index is under 100 MiB.
 */
export const PACKAGES_CEILING = 512 << 20;

async function decompressIndex(
  data: Buffer,
  ext: string,
  label: string,
  maxBytes: number,
  why: string,
): Promise<Buffer> {
  if (ext === '') return data;
  const parts: Buffer[] = [];
  const input = (async function* () {
    yield data;
  })();
  for await (const c of decompress(input, ext === '.xz' ? 'xz' : 'gzip', label, { maxBytes, why })) parts.push(c);
  return Buffer.concat(parts);
}

/**
 * Fetch one Packages index and return its decompressed text, or undefined when
 * the Release table lists no Packages file for this component/arch.
 */
export async function fetchPackagesIndex(o: FetchIndexOptions): Promise<{ text: string; url: string } | undefined> {
  const dir = `${o.component}/binary-${o.arch}`;
  // The uncompressed index, when the Release pins it and the cache has it, saves a decompression.
  const plain = o.release.sha256.get(`${dir}/Packages`);
  if (plain && o.cache) {
    const hit = await o.cache.lookup(plain.sha256, plain.size);
    if (hit)
      return { text: (await readFile(hit)).toString('utf8'), url: `${o.baseUrl}/dists/${o.suite}/${dir}/Packages` };
  }
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
          data = await httpGet(`${o.baseUrl}/dists/${o.suite}/${dir}/by-hash/SHA256/${entry.sha256}`, {
            maxBytes: entry.size,
          });
        } catch (e) {
          if (httpStatusOf(e) !== 404) throw e;
        }
      }
      if (!data) {
        try {
          data = await httpGet(url, { maxBytes: entry.size });
        } catch (e) {
          if (httpStatusOf(e) === 404 && ext !== '') continue; // try the next compression the Release lists
          throw e;
        }
      }
      const got = sha256Hex(data);
      if (data.length !== entry.size || got !== entry.sha256) {
        throw new MkimgError(
          'repository',
          `${url} does not match the signed Release of suite "${o.suite}": expected ${entry.size} bytes sha256 ${entry.sha256}, got ${data.length} bytes sha256 ${got}`,
          {
            hint: 'the mirror may be mid-update (retry later) or tampered with; try another mirror with --mirror SUITE=URL',
            details: { suite: o.suite, url },
          },
        );
      }
      if (o.cache) await o.cache.putBytes(data, entry.sha256);
    }
    let text: Buffer;
    try {
      const [max, why] = plain
        ? [plain.size, `the size the signed Release lists for ${dir}/Packages`]
        : [PACKAGES_CEILING, `the ceiling for a Packages index, ${formatBytes(PACKAGES_CEILING)}`];
      text = await decompressIndex(data, ext, url, max, why);
    } catch (e) {
      if (e instanceof MkimgError && e.kind === 'environment') throw e;
      throw new MkimgError('repository', `cannot decompress ${url}: ${(e as Error).message.replace(`${url}: `, '')}`, {
        details: { suite: o.suite, url },
      });
    }
    if (ext !== '' && plain && o.cache && text.length === plain.size && sha256Hex(text) === plain.sha256)
      await o.cache.putBytes(text, plain.sha256);
    return { text: text.toString('utf8'), url };
  }
  return undefined;
}

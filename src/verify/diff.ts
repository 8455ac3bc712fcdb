/**
 * mkimg diff: where two image tars differ. Blobs are matched by their role
 * (image manifest, config, layer N), not by name, since any change renames
 * them. JSON documents are compared key by key (paths like config.config.Env[2]),
 * layers file by file and header field by header field. One pass over each
 * tar, plus a second only when some layer differs.
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { MkimgError } from '../util/errors.js';
import { parseJson } from '../oci/image-tar.js';
import { scanImageTar, type ImageTarEntry, type ImageTarScan } from './read-image.js';
import { LayerDecoder } from '../oci/decompress.js';
import { TarParser, type TarHeader } from '../image/tar-reader.js';
import { asTextLines, unifiedDiff } from '../util/text-diff.js';

export interface Difference {
  /** What differs: "index.json", "config", "manifest", "layer 0", "layer 0: usr/bin/env", "tar", ... */
  where: string;
  /** The JSON path or tar header field, when there is one. */
  field?: string;
  a?: unknown;
  b?: unknown;
  /** One line for humans. */
  message: string;
  /** A digest or size that only follows from another difference (a layer's or the config's bytes changed). */
  derived?: boolean;
  /** For a small changed text file: its unified diff (--- a/, +++ b/, @@ hunks). */
  textDiff?: string[];
}

/** Files up to this size keep their bytes while a layer is read, for a text diff. */
const TEXT_DIFF_MAX = 64 * 1024;

export interface ImageDiff {
  identical: boolean;
  differences: Difference[];
}

const BLOB_RE = /^(?:\.\/)?blobs\/sha256\/([0-9a-f]{64})$/;
const HEADER_FIELDS: (keyof TarHeader)[] = [
  'type',
  'mode',
  'uid',
  'gid',
  'size',
  'mtime',
  'linkname',
  'uname',
  'gname',
  'devmajor',
  'devminor',
  'magic',
];

function show(v: unknown): string {
  if (typeof v === 'number') return String(v);
  const s = JSON.stringify(v);
  return s === undefined ? 'absent' : s.length > 120 ? s.slice(0, 117) + '...' : s;
}

function fmtField(field: string, v: unknown): string {
  return field === 'mode' && typeof v === 'number' ? '0' + v.toString(8) : show(v);
}

/** Key-by-key comparison of two JSON values. Paths look like config.config.Env[2]. */
export function diffJson(where: string, root: string, a: unknown, b: unknown, out: Difference[], limit = 200): void {
  const walk = (path: string, x: unknown, y: unknown) => {
    if (out.length >= limit) return;
    if (x === y) return;
    const ox = x !== null && typeof x === 'object';
    const oy = y !== null && typeof y === 'object';
    if (ox && oy && Array.isArray(x) === Array.isArray(y)) {
      if (Array.isArray(x)) {
        const ya = y as unknown[];
        for (let i = 0; i < Math.max(x.length, ya.length); i++) walk(`${path}[${i}]`, x[i], ya[i]);
      } else {
        const xo = x as Record<string, unknown>;
        const yo = y as Record<string, unknown>;
        const keys = [...new Set([...Object.keys(xo), ...Object.keys(yo)])].sort();
        for (const k of keys)
          walk(/^[A-Za-z_$][\w$]*$/.test(k) ? `${path}.${k}` : `${path}[${JSON.stringify(k)}]`, xo[k], yo[k]);
      }
      return;
    }
    out.push({ where, field: path, a: x, b: y, message: `${where}: ${path}: ${show(x)} ≠ ${show(y)}` });
  };
  walk(root, a, b);
}

/** The blobs of one image manifest, by role; `prefix` is "" for a one-image tar, "linux/arm64/v8 " in an index. */
interface ImageRoles {
  prefix: string;
  manifest?: string;
  config?: string;
  layers: string[];
}

interface Roles {
  images: ImageRoles[];
  byHex: Map<string, string>;
}

/** A role name that is a layer: "layer 0", "linux/amd64 layer 0". */
function isLayerRole(n: string): boolean {
  return /(?:^|\s)layer \d+$/.test(n);
}

/** A JSON document, or undefined when it is missing or not JSON: diff describes a damaged image too (verify says why). */
function parse(e: ImageTarEntry | undefined): any {
  if (!e?.bytes) return undefined;
  try {
    return parseJson(e.bytes, e.header.name, (msg) => new MkimgError('integrity', msg));
  } catch {
    return undefined;
  }
}

function hexOf(d: unknown): string | undefined {
  return typeof d === 'string' && d.startsWith('sha256:') ? d.slice(7) : undefined;
}

function roles(scan: ImageTarScan): Roles {
  const get = (n: string) => scan.byName.get(n) ?? scan.byName.get('./' + n);
  const r: Roles = { images: [], byHex: new Map() };
  const index = parse(get('index.json'));
  const top = index?.manifests?.[0];
  const topHex = hexOf(top?.digest);
  const doc = topHex ? parse(get(`blobs/sha256/${topHex}`)) : undefined;
  const entries: { hex?: string; prefix: string }[] = [];
  if (topHex && Array.isArray(doc?.manifests)) {
    // An image of several platforms: the index, then each platform's image.
    r.byHex.set(topHex, 'image index');
    for (const m of doc.manifests) {
      const p = m?.platform;
      const name = p ? [p.os, p.architecture, p.variant].filter(Boolean).join('/') : hexOf(m?.digest)?.slice(0, 12);
      entries.push({ hex: hexOf(m?.digest), prefix: `${name} ` });
    }
  } else entries.push({ hex: topHex, prefix: '' });
  for (const { hex, prefix } of entries) {
    const img: ImageRoles = { prefix, manifest: hex, layers: [] };
    const manifest = hex ? parse(get(`blobs/sha256/${hex}`)) : undefined;
    img.config = hexOf(manifest?.config?.digest);
    if (Array.isArray(manifest?.layers)) img.layers = manifest.layers.map((l: any) => hexOf(l?.digest) ?? '');
    r.images.push(img);
  }
  // First role wins: a layer two platforms share is named after the first.
  for (const img of r.images) {
    if (img.manifest && !r.byHex.has(img.manifest)) r.byHex.set(img.manifest, `${img.prefix}manifest`);
    if (img.config && !r.byHex.has(img.config)) r.byHex.set(img.config, `${img.prefix}config`);
  }
  for (const img of r.images)
    img.layers.forEach((h, i) => h && !r.byHex.has(h) && r.byHex.set(h, `${img.prefix}layer ${i}`));
  return r;
}

/** The role-based name of an outer tar entry: blobs are named by role. */
function roleName(name: string, r: Roles): string {
  const m = BLOB_RE.exec(name);
  if (!m) return name.replace(/^\.\//, '');
  return r.byHex.get(m[1]) ?? `unreferenced blob sha256:${m[1]}`;
}

function diffHeaders(where: string, a: TarHeader, b: TarHeader, out: Difference[], skipSize = false): void {
  for (const f of HEADER_FIELDS) {
    if (f === 'size' && (skipSize || a.type !== '0')) continue;
    if (a[f] !== b[f])
      out.push({
        where,
        field: f,
        a: a[f],
        b: b[f],
        message: `${where}: header ${f}: ${fmtField(f, a[f])} ≠ ${fmtField(f, b[f])}`,
      });
  }
  const keys = [...new Set([...Object.keys(a.pax), ...Object.keys(b.pax)])].sort();
  for (const k of keys) {
    if (a.pax[k] !== b.pax[k])
      out.push({
        where,
        field: `pax.${k}`,
        a: a.pax[k],
        b: b.pax[k],
        message: `${where}: pax record ${k}: ${show(a.pax[k])} ≠ ${show(b.pax[k])}`,
      });
  }
}

function withoutPadding(pax: Record<string, string>): Record<string, string> {
  if (pax.comment === undefined || !/^0*$/.test(pax.comment)) return pax;
  const { comment: _padding, ...rest } = pax;
  return rest;
}

interface LayerEntry {
  header: TarHeader;
  sha256: string;
  /** The content of a regular file of at most TEXT_DIFF_MAX bytes. */
  small?: Buffer;
}

/** Second pass: parse the layer tars named by `hexes` inside the image tar. */
async function readLayers(path: string, hexes: Set<string>): Promise<Map<string, LayerEntry[] | string>> {
  const out = new Map<string, LayerEntry[] | string>();
  await scanImageTar(path, {
    keepLimit: 0,
    tap(h) {
      const m = BLOB_RE.exec(h.name);
      if (!m || !hexes.has(m[1])) return undefined;
      const hex = m[1];
      const entries: LayerEntry[] = [];
      let cur: { hash: ReturnType<typeof createHash>; e: LayerEntry } | undefined;
      let broken: string | undefined;
      const inner = new TarParser((ih) => {
        const e: LayerEntry = { header: ih, sha256: '' };
        entries.push(e);
        const hash = createHash('sha256');
        cur = { hash, e };
        const keep = ih.type === '0' && ih.size <= TEXT_DIFF_MAX ? ([] as Buffer[]) : undefined;
        return {
          write: (c) => {
            hash.update(c);
            keep?.push(Buffer.from(c));
          },
          end: () => {
            e.sha256 = hash.digest('hex');
            if (keep) e.small = Buffer.concat(keep);
            cur = undefined;
          },
        };
      });
      // A compressed layer (gzip or zstd magic) is compared by its decompressed tar.
      let decoder: LayerDecoder | undefined;
      let first = true;
      return {
        write(c) {
          if (broken) return;
          try {
            if (first) {
              first = false;
              const compression =
                c.length >= 4 && c[0] === 0x1f && c[1] === 0x8b
                  ? 'gzip'
                  : c.length >= 4 && c.readUInt32LE(0) === 0xfd2fb528
                    ? 'zstd'
                    : undefined;
              if (compression)
                decoder = new LayerDecoder(compression, h.size, `layer sha256:${hex}`, (d) =>
                  inner.push(Buffer.from(d.buffer, d.byteOffset, d.length)),
                );
            }
            if (decoder) decoder.write(c);
            else inner.push(c);
          } catch (err) {
            broken = (err as Error).message;
          }
        },
        end() {
          if (!broken) {
            try {
              decoder?.end();
              inner.end();
            } catch (err) {
              broken = (err as Error).message;
            }
          }
          void cur;
          out.set(hex, broken ? `not a valid tar: ${broken}` : entries);
        },
      };
    },
  });
  return out;
}

function diffLayer(
  where: string,
  a: LayerEntry[] | string | undefined,
  b: LayerEntry[] | string | undefined,
  out: Difference[],
  limit: number,
): void {
  if (typeof a === 'string' || typeof b === 'string' || !a || !b) {
    out.push({
      where,
      a: typeof a === 'string' ? a : 'tar',
      b: typeof b === 'string' ? b : 'tar',
      message:
        `${where}: ${typeof a === 'string' ? 'in the first image, ' + a : ''}${typeof b === 'string' ? ' in the second image, ' + b : ''}`.trim(),
    });
    return;
  }
  const am = new Map(a.map((e) => [e.header.name, e]));
  const bm = new Map(b.map((e) => [e.header.name, e]));
  const start = out.length;
  const names = [...new Set([...am.keys(), ...bm.keys()])].sort();
  for (const n of names) {
    if (out.length >= limit) return;
    const x = am.get(n);
    const y = bm.get(n);
    const w = `${where}: ${n}`;
    if (!x) out.push({ where: w, a: 'absent', b: 'present', message: `${w}: only in the second image` });
    else if (!y) out.push({ where: w, a: 'present', b: 'absent', message: `${w}: only in the first image` });
    else {
      diffHeaders(w, x.header, y.header, out);
      if (x.header.type === '0' && y.header.type === '0' && x.sha256 !== y.sha256) {
        const d: Difference = {
          where: w,
          field: 'content',
          a: `sha256:${x.sha256}`,
          b: `sha256:${y.sha256}`,
          message: `${w}: content differs (sha256:${x.sha256.slice(0, 12)}… ≠ sha256:${y.sha256.slice(0, 12)}…)`,
        };
        const ta = x.small && asTextLines(x.small);
        const tb = y.small && asTextLines(y.small);
        const text = ta && tb ? unifiedDiff(n, ta, tb) : undefined;
        if (text?.length) d.textDiff = text;
        out.push(d);
      }
    }
  }
  if (out.length === start) {
    const i = a.findIndex((e, k) => b[k]?.header.name !== e.header.name);
    if (i >= 0) {
      out.push({
        where,
        field: 'order',
        a: a[i].header.name,
        b: b[i]?.header.name,
        message: `${where}: entries are in a different order from entry ${i} (${show(a[i].header.name)} vs ${show(b[i]?.header.name)})`,
      });
    }
  }
}

/** The first offset at which two files differ, or -1 if they are equal. */
export async function firstDifference(pa: string, pb: string): Promise<number> {
  const [fa, fb] = await Promise.all([open(pa, 'r'), open(pb, 'r')]);
  try {
    const size = 1 << 20;
    const ba = Buffer.allocUnsafe(size);
    const bb = Buffer.allocUnsafe(size);
    let pos = 0;
    for (;;) {
      const [ra, rb] = await Promise.all([fa.read(ba, 0, size, pos), fb.read(bb, 0, size, pos)]);
      const n = Math.min(ra.bytesRead, rb.bytesRead);
      if (ba.compare(bb, 0, n, 0, n) !== 0) {
        for (let i = 0; i < n; i++) if (ba[i] !== bb[i]) return pos + i;
      }
      if (ra.bytesRead !== rb.bytesRead) return pos + n;
      if (n === 0) return -1;
      pos += n;
    }
  } finally {
    await Promise.all([fa.close(), fb.close()]);
  }
}

async function scanForDiff(path: string): Promise<ImageTarScan> {
  return scanImageTar(path);
}

/** Compare two image tars. `limit` caps the number of differences reported. */
export async function diffImages(pathA: string, pathB: string, limit = 200): Promise<ImageDiff> {
  const first = await firstDifference(pathA, pathB).catch((e: NodeJS.ErrnoException) => {
    throw new MkimgError('usage', `cannot read ${e.path ?? 'an image'}: ${e.code ?? e.message}`, {
      hint: 'give two image tars: mkimg diff a.tar b.tar',
    });
  });
  if (first < 0) return { identical: true, differences: [] };
  const [sa, sb] = await Promise.all([scanForDiff(pathA), scanForDiff(pathB)]);
  const ra = roles(sa);
  const rb = roles(sb);
  const out: Difference[] = [];

  // Outer entries, by role.
  const na = new Map(sa.entries.map((e) => [roleName(e.header.name, ra), e]));
  const nb = new Map(sb.entries.map((e) => [roleName(e.header.name, rb), e]));
  const all = [...new Set([...na.keys(), ...nb.keys()])].sort();
  for (const n of all) {
    const x = na.get(n);
    const y = nb.get(n);
    if (!x || !y) {
      out.push({
        where: n,
        a: x ? 'present' : 'absent',
        b: y ? 'present' : 'absent',
        message: `${n}: only in the ${x ? 'first' : 'second'} image`,
      });
      continue;
    }
    // A layer's PAX `comment` of '0's is the image tar's padding (SPEC §5, the
    // layer rule): it follows from the blobs' names, whose differences show anyway.
    const layer = isLayerRole(n);
    const hdrA = { ...x.header, name: '', pax: layer ? withoutPadding(x.header.pax) : x.header.pax };
    const hdrB = { ...y.header, name: '', pax: layer ? withoutPadding(y.header.pax) : y.header.pax };
    diffHeaders(`${n} (image tar entry)`, hdrA, hdrB, out, x.sha256 !== y.sha256);
    if (x.sha256 === y.sha256) continue;
    // A blob whose bytes do not hash to its own name was altered after it was
    // written: say so, as mkimg verify does, whatever else differs.
    for (const [e, which] of [
      [x, 'first'],
      [y, 'second'],
    ] as const) {
      const m = BLOB_RE.exec(e.header.name);
      if (m && m[1] !== e.sha256) {
        out.push({
          where: n,
          field: 'digest',
          a: `sha256:${m[1]}`,
          b: `sha256:${e.sha256}`,
          message: `${n}: in the ${which} image its content does not match its digest (named sha256:${m[1].slice(0, 12)}…, hashes to sha256:${e.sha256.slice(0, 12)}…): tampered or corrupt, as mkimg verify reports`,
        });
      }
    }
    if (layer) continue; // compared file by file below
    const ja = parse(x);
    const jb = parse(y);
    if (ja !== undefined && jb !== undefined) {
      const before = out.length;
      // The JSON path starts at the document's kind (config.…, manifest.…, index.…), whatever the platform.
      diffJson(
        n,
        n === 'index.json' || n === 'manifest.json' || n === 'oci-layout'
          ? n.replace(/\.json$/, '')
          : n === 'image index'
            ? 'index'
            : n.split(' ').pop()!,
        ja,
        jb,
        out,
        limit,
      );
      if (out.length === before)
        out.push({
          where: n,
          field: 'bytes',
          message: `${n}: same JSON value, different bytes (key order or whitespace)`,
        });
    } else {
      out.push({
        where: n,
        field: 'content',
        a: `sha256:${x.sha256}`,
        b: `sha256:${y.sha256}`,
        message: `${n}: content differs`,
      });
    }
  }

  // Layers that differ: file by file, platform by platform.
  const pairs: [string, string, string][] = [];
  for (const ia of ra.images) {
    const ib = rb.images.find((x) => x.prefix === ia.prefix);
    if (!ib) continue; // the platform's manifest shows as only in one image
    for (let i = 0; i < Math.max(ia.layers.length, ib.layers.length); i++) {
      const where = `${ia.prefix}layer ${i}`;
      const ha = ia.layers[i];
      const hb = ib.layers[i];
      // Same name, different bytes (a tampered layer): compared file by file too, to show where.
      const sameNameDiffers = ha !== undefined && ha === hb && na.get(where)?.sha256 !== nb.get(where)?.sha256;
      if (ha && hb && (ha !== hb || sameNameDiffers)) pairs.push([where, ha, hb]);
      else if (!ha || !hb) out.push({ where, message: `${where}: only in the ${ha ? 'first' : 'second'} image` });
    }
  }
  if (pairs.length && out.length < limit) {
    const [la, lb] = await Promise.all([
      readLayers(pathA, new Set(pairs.map((p) => p[1]))),
      readLayers(pathB, new Set(pairs.map((p) => p[2]))),
    ]);
    for (const [where, ha, hb] of pairs) {
      const before = out.length;
      diffLayer(where, la.get(ha), lb.get(hb), out, limit);
      if (out.length === before) {
        out.push({
          where,
          field: 'bytes',
          a: `sha256:${ha}`,
          b: `sha256:${hb}`,
          message: `${where}: same files and headers, different tar bytes (header encoding or padding)`,
        });
      }
    }
  }
  if (out.length === 0)
    out.push({
      where: 'tar',
      field: 'offset',
      a: first,
      b: first,
      message: `the tars differ first at byte ${first}, in framing mkimg does not model (padding, end marker)`,
    });
  return { identical: false, differences: realFirst(out).slice(0, limit) };
}

/** Digest and size references between the image's documents (and Docker's manifest.json paths to blobs). */
const REFERENCE_FIELD =
  /(?:\.digest|\.size|^config\.rootfs\.diff_ids\[\d+\]|^manifest\[\d+\]\.(?:Config|Layers\[\d+\]))$/;

/**
 * Mark the differences that only follow from others (a changed layer changes
 * its digest in the config's diff_ids, the manifest, and so the index and
 * manifest.json) and put the real ones first. When nothing but references
 * differ, nothing is marked: then they are the news.
 */
function realFirst(ds: Difference[]): Difference[] {
  const isReference = (d: Difference) =>
    (d.field !== undefined && REFERENCE_FIELD.test(d.field) && !isLayerRole(d.where.split(':')[0]!)) ||
    (d.where.endsWith('(image tar entry)') && d.field === 'size');
  if (ds.every(isReference)) return ds;
  for (const d of ds) if (isReference(d)) d.derived = true;
  return [...ds.filter((d) => !d.derived), ...ds.filter((d) => d.derived)];
}

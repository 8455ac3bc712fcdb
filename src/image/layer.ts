/**
 * The layer: one sorted walk over the entries that go into the image, each
 * emitted as a normalized tar header plus content. `planLayer` is pure (it
 * decides order, hardlink leaders and implied parents); `writeLayer` only
 * turns the plan into bytes.
 */
import { createHash } from 'node:crypto';
import type { StageEntry } from '../stage/types.js';
import { MkimgError } from '../util/errors.js';
import { BLOCK, encodeHeader, headerLength, padding, type TarHeader } from './tar-header.js';
import type { CopiedContent, HashingSink } from './sink.js';
import { imageParent } from '../util/path-order.js';

export type LayerEntry = Pick<
  StageEntry,
  | 'path'
  | 'type'
  | 'mode'
  | 'uid'
  | 'gid'
  | 'size'
  | 'linkTarget'
  | 'hostPath'
  | 'contentOffset'
  | 'capability'
  | 'sha256'
> & {
  /** Who put it there (StageEntry.origin): what the layering strategy splits by. */
  origin?: string;
  /** Check the content against this digest while writing (content read from outside the staging root). */
  verifySha256?: string;
  /**
   * Hash the content as it is written and report its digests (content read
   * from outside the staging root whose pin is checked afterwards, against
   * exactly these bytes). Called before any later entry's `content()`, and at
   * the latest when the layer is finished.
   */
  record?: (d: ContentDigests) => void;
  /**
   * Content produced when the writer reaches the entry (the SBOM, which lists
   * the digests `record` reports for the files before it). Must be `size` bytes.
   */
  content?: () => Buffer;
};

export interface ContentDigests {
  sha256: string;
  sha1: string;
  size: number;
}

export interface PlannedEntry {
  name: string; // tar name: image path without the leading "/"
  entry: LayerEntry;
  /** For a hardlink: tar name of the file it links to (which comes earlier). */
  hardlinkTo?: string;
}

/**
 * Sort key: path components compared bytewise, so a directory's subtree is
 * contiguous and follows the directory ("a", "a/b", "a-c"). Mapping "/" to
 * 0x00 and comparing UTF-8 bytes gives exactly that.
 */
export function sortKey(path: string): Buffer {
  return Buffer.from(path.replace(/\//g, '\u0000'), 'utf8');
}

/**
 * The order of sortKey, without encoding: UTF-16 code units below the
 * surrogates order as UTF-8 bytes do, "/" counting as 0x00. A first
 * difference involving a surrogate compares the keys themselves.
 */
export function comparePaths(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 || y >= 0xd800) return Buffer.compare(sortKey(a), sortKey(b));
    if (x === 0x2f) x = 0;
    if (y === 0x2f) y = 0;
    if (x !== y) return x - y;
  }
  return a.length - b.length;
}

/**
 * `items` sorted as comparePaths orders their paths, each key computed once.
 * Without surrogate pairs, UTF-16 code units order like UTF-8 bytes, so the
 * keys are compared as strings; otherwise as the UTF-8 bytes themselves.
 */
export function sortByPath<T>(items: Iterable<T>, pathOf: (x: T) => string): T[] {
  const keyed = Array.from(items, (x) => ({ x, k: pathOf(x).replace(/\//g, '\u0000') }));
  if (keyed.some((e) => /[\ud800-\udfff]/.test(e.k))) {
    const bytes = new Map(keyed.map((e) => [e, Buffer.from(e.k, 'utf8')]));
    keyed.sort((a, b) => Buffer.compare(bytes.get(a)!, bytes.get(b)!));
  } else {
    keyed.sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0));
  }
  return keyed.map((e) => e.x);
}

export function planLayer(input: Iterable<LayerEntry>): PlannedEntry[] {
  const byPath = new Map<string, LayerEntry>();
  for (const e of input) {
    if (e.path === '/' || e.path === '') continue; // the root directory is the runtime's
    if (!e.path.startsWith('/') || e.path.endsWith('/') || e.path.split('/').includes('..')) {
      throw new MkimgError('internal', `layer entry with a non-normalized path: ${e.path}`);
    }
    if (byPath.has(e.path)) throw new MkimgError('internal', `layer entry listed twice: ${e.path}`);
    byPath.set(e.path, e);
  }
  // Parents that the kept set implies but does not list: plain 0755 root directories.
  for (const p of [...byPath.keys()]) {
    for (let d = imageParent(p); d !== '/'; d = imageParent(d)) {
      if (byPath.has(d)) {
        if (byPath.get(d)!.type !== 'dir') throw new MkimgError('internal', `${p}: parent ${d} is not a directory`);
        break;
      }
      byPath.set(d, { path: d, type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0 });
    }
  }

  // Hardlink groups: every name of one inode maps to its root file. The
  // leader written as a regular file is the group's first name in sort order.
  const rootOf = (e: LayerEntry): string => {
    let cur = e;
    for (let hops = 0; cur.type === 'hardlink'; hops++) {
      if (hops > 64 || !cur.linkTarget)
        throw new MkimgError('internal', `hardlink loop or dangling hardlink at ${e.path}`);
      const next = byPath.get(cur.linkTarget);
      if (!next) return cur.linkTarget; // the original name was not kept
      cur = next;
    }
    return cur.path;
  };

  const sorted = sortByPath(byPath.values(), (e) => e.path);
  const leaderOf = new Map<string, LayerEntry>();
  const plan: PlannedEntry[] = [];
  for (const e of sorted) {
    const name = e.path.slice(1);
    if (e.type === 'hardlink' || isHardlinkRoot(e, byPath)) {
      const root = e.type === 'hardlink' ? rootOf(e) : e.path;
      const leader = leaderOf.get(root);
      if (leader) {
        plan.push({
          name,
          entry: { ...e, type: 'hardlink', size: 0, linkTarget: leader.path },
          hardlinkTo: leader.path.slice(1),
        });
        continue;
      }
      // First name of the group in sort order: it carries the content.
      const source = byPath.get(root) ?? e;
      const content = source.type === 'hardlink' ? e : source;
      const asFile: LayerEntry = {
        ...content,
        path: e.path,
        type: 'file',
        mode: content.mode,
        uid: content.uid,
        gid: content.gid,
      };
      if (asFile.hostPath === undefined)
        throw new MkimgError('internal', `hardlink group ${root} has no content source`);
      leaderOf.set(root, asFile);
      plan.push({ name, entry: asFile });
      continue;
    }
    plan.push({ name, entry: e });
  }
  return plan;
}

const hardlinkTargets = new WeakMap<Map<string, LayerEntry>, Set<string>>();
function isHardlinkRoot(e: LayerEntry, byPath: Map<string, LayerEntry>): boolean {
  if (e.type !== 'file') return false;
  let set = hardlinkTargets.get(byPath);
  if (!set) {
    set = new Set();
    for (const x of byPath.values()) if (x.type === 'hardlink' && x.linkTarget) set.add(x.linkTarget);
    hardlinkTargets.set(byPath, set);
  }
  return set.has(e.path);
}

/** Exact byte size of the layer the plan will produce (headers, content, padding, end blocks). */
export function layerSize(plan: PlannedEntry[], mtime: number): number {
  let n = 0;
  for (const p of plan) {
    n += headerLength(tarHeader(p, mtime));
    if (!p.hardlinkTo && p.entry.type === 'file') n += p.entry.size + padding(p.entry.size);
  }
  return n + 2 * BLOCK;
}

function tarHeader(p: PlannedEntry, mtime: number): TarHeader {
  const e = p.entry;
  const xattrs = e.capability ? { 'security.capability': e.capability } : undefined;
  if (p.hardlinkTo) {
    return {
      name: p.name,
      type: 'hardlink',
      mode: e.mode,
      uid: e.uid,
      gid: e.gid,
      size: 0,
      mtime,
      linkname: p.hardlinkTo,
      xattrs,
    };
  }
  return {
    name: p.name,
    type: e.type,
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
    size: e.type === 'file' ? e.size : 0,
    mtime,
    linkname: e.type === 'symlink' ? e.linkTarget : undefined,
    xattrs,
  };
}

function headerFor(p: PlannedEntry, mtime: number): Buffer {
  return encodeHeader(tarHeader(p, mtime));
}

/**
 * A name for the bytes the plan will produce, known without reading any
 * content: the sha256 of every header as writeLayer encodes it and of each
 * content's sha256 (the rest of a layer is padding and end blocks). Two plans
 * with one key give one layer. Undefined when some content's digest is not
 * known beforehand, or is to be checked or recorded while it is read.
 */
export function layerKey(plan: PlannedEntry[], mtime: number): string | undefined {
  const h = createHash('sha256');
  for (const p of plan) {
    const e = p.entry;
    if (e.content || e.record || e.verifySha256 !== undefined) return undefined;
    h.update(headerFor(p, mtime));
    if (p.hardlinkTo || e.type !== 'file' || e.size === 0) continue;
    if (e.sha256 === undefined) return undefined;
    h.update(e.sha256);
  }
  return h.digest('hex');
}

/** Content ranges `record` asks for: what a digester must make room for. */
export function recordedEntries(plan: PlannedEntry[]): number {
  let n = 0;
  for (const p of plan) if (!p.hardlinkTo && p.entry.record) n++;
  return n;
}

/**
 * Write the planned entries as one tar stream (ending with two zero blocks)
 * into the sink, finish it, and return the layer's sha256 and size.
 */
export function writeLayer(plan: PlannedEntry[], mtime: number, sink: HashingSink): { sha256: string; size: number } {
  // Recorded content whose sha1 the digester may not have reached yet.
  const pending: { entry: LayerEntry; copied: CopiedContent }[] = [];
  const report = () => {
    for (const { entry, copied } of pending) entry.record!(sink.digestsOf(copied));
    pending.length = 0;
  };
  for (const p of plan) {
    const e = p.entry;
    const isContent = !p.hardlinkTo && e.type === 'file';
    if (isContent && e.content) {
      sink.sync();
      report();
    }
    sink.write(headerFor(p, mtime));
    if (!isContent) continue;
    if (e.content) {
      const bytes = e.content();
      if (bytes.length !== e.size)
        throw new MkimgError('internal', `${e.path}: produced ${bytes.length} bytes, planned ${e.size}`);
      sink.write(bytes);
    } else if (e.record) {
      pending.push({ entry: e, copied: sink.copyFile(e.hostPath!, e.size, e.path, { record: true })! });
    } else if (e.size > 0) {
      sink.copyFile(e.hostPath!, e.size, e.path, { expectSha256: e.verifySha256, offset: e.contentOffset });
    }
    sink.zeros(padding(e.size));
  }
  sink.zeros(2 * BLOCK);
  const done = sink.finish();
  report();
  return done;
}

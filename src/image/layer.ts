/**
 * The layer: one sorted walk over the entries that go into the image, each
 * emitted as a normalized tar header plus content. `planLayer` is pure (it
 * decides order, hardlink leaders and implied parents); `writeLayer` only
 * turns the plan into bytes.
 */
import type { StageEntry } from '../stage/types.js';
import { MkimgError } from '../util/errors.js';
import { BLOCK, encodeHeader, headerLength, padding, type TarHeader } from './tar-header.js';
import type { HashingSink } from './sink.js';

export type LayerEntry = Pick<StageEntry, 'path' | 'type' | 'mode' | 'uid' | 'gid' | 'size' | 'linkTarget' | 'hostPath' | 'contentOffset' | 'capability'> & {
  /** Check the content against this digest while writing (content read from outside the staging root). */
  verifySha256?: string;
};

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

export function comparePaths(a: string, b: string): number {
  return Buffer.compare(sortKey(a), sortKey(b));
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
    for (let d = parentOf(p); d !== '/'; d = parentOf(d)) {
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
      if (hops > 64 || !cur.linkTarget) throw new MkimgError('internal', `hardlink loop or dangling hardlink at ${e.path}`);
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
        plan.push({ name, entry: { ...e, type: 'hardlink', size: 0, linkTarget: leader.path }, hardlinkTo: leader.path.slice(1) });
        continue;
      }
      // First name of the group in sort order: it carries the content.
      const source = byPath.get(root) ?? e;
      const content = source.type === 'hardlink' ? e : source;
      const asFile: LayerEntry = { ...content, path: e.path, type: 'file', mode: content.mode, uid: content.uid, gid: content.gid };
      if (asFile.hostPath === undefined) throw new MkimgError('internal', `hardlink group ${root} has no content source`);
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

function parentOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i <= 0 ? '/' : p.slice(0, i);
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
    return { name: p.name, type: 'hardlink', mode: e.mode, uid: e.uid, gid: e.gid, size: 0, mtime, linkname: p.hardlinkTo, xattrs };
  }
  return { name: p.name, type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, size: e.type === 'file' ? e.size : 0, mtime, linkname: e.type === 'symlink' ? e.linkTarget : undefined, xattrs };
}

function headerFor(p: PlannedEntry, mtime: number): Buffer {
  return encodeHeader(tarHeader(p, mtime));
}

/** Write the planned entries as one tar stream (ending with two zero blocks) into the sink. */
export function writeLayer(plan: PlannedEntry[], mtime: number, sink: HashingSink): void {
  for (const p of plan) {
    sink.write(headerFor(p, mtime));
    if (!p.hardlinkTo && p.entry.type === 'file') {
      if (p.entry.size > 0) sink.copyFile(p.entry.hostPath!, p.entry.size, p.entry.path, p.entry.verifySha256, p.entry.contentOffset);
      sink.zeros(padding(p.entry.size));
    }
  }
  sink.zeros(2 * BLOCK);
}

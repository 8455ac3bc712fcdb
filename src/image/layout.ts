/**
 * The image tar's layout, decided by value alone (no I/O): which members, in
 * which order, with which header bytes, at which offsets. write-image.ts turns
 * a plan into a file; `mkimg build` and `mkimg pull` both go through here, so
 * a pulled image is byte-identical to the built one.
 *
 * Rules (SPEC §5):
 * - members deduplicated by name (two blobs share a digest only if their
 *   bytes are equal), sorted with comparePaths (parents first);
 * - fixed headers: root-owned, 0755 directories and 0644 files, one mtime;
 * - the layer rule: the first layer blob in name order carries, when needed, a
 *   PAX header whose `comment` record pads its header so that its data starts
 *   where it would if every non-layer blob (config, image manifest) sorted
 *   before it. The padding is the total size of the tar entries of the
 *   non-layer blobs that sort after it (0 when none do: no PAX header). So the
 *   layer's data offset depends only on the sizes of the blobs and the layer,
 *   never on the digests, and the builder can write the layer's bytes at their
 *   final place before its digest (and so its name and rank) is known;
 * - then the two end-of-archive zero blocks, nothing else.
 */
import { sortByPath } from './layer.js';
import { BLOCK, encodeHeader, padding } from './tar-header.js';

/**
 * A member of the image tar. A file's content is in-memory bytes, a host
 * file's content, or (`written`) already in the output file at the offset the
 * plan gives it. `layer` marks a layer blob (for the layer rule).
 */
export type LayoutMember =
  | { name: string; type: 'dir' }
  | { name: string; type: 'file'; bytes: Buffer; layer?: boolean }
  | {
      name: string;
      type: 'file';
      hostPath: string /** where the content starts in hostPath (default 0) */;
      offset?: number;
      size: number;
      layer?: boolean;
    }
  | { name: string; type: 'file'; written: true; size: number; layer?: boolean };

export interface PlannedMember {
  member: LayoutMember;
  /** Content bytes (0 for a directory). */
  size: number;
  /** The header block(s): PAX header and data when there is one, then the USTAR block. */
  header: Buffer;
  /** Offset of the first header byte. */
  offset: number;
  /** Offset of the first content byte (= offset + header.length). */
  dataOffset: number;
}

export interface LayoutPlan {
  members: PlannedMember[];
  /** The first layer blob in name order, if any (the one the layer rule pads). */
  firstLayer?: PlannedMember;
  /** Total bytes of the tar, end-of-archive blocks included. */
  size: number;
}

export function memberSize(m: LayoutMember): number {
  return m.type === 'dir' ? 0 : 'bytes' in m ? m.bytes.length : m.size;
}

function headerOf(m: LayoutMember, mtime: number, length?: number): Buffer {
  if (m.type === 'dir')
    return encodeHeader({ name: m.name, type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0, mtime }, length);
  return encodeHeader({ name: m.name, type: 'file', mode: 0o644, uid: 0, gid: 0, size: memberSize(m), mtime }, length);
}

function parentOf(name: string): string {
  const i = name.lastIndexOf('/');
  return i < 0 ? '' : name.slice(0, i);
}

/** Plan the image tar for `members` (any order; duplicates by name collapse, a name is a layer if any of its members says so). */
export function planLayout(members: LayoutMember[], mtime: number): LayoutPlan {
  const byName = new Map<string, LayoutMember>();
  const layers = new Set<string>();
  for (const m of members) {
    if (m.type === 'file' && m.layer) layers.add(m.name);
    if (!byName.has(m.name)) byName.set(m.name, m);
  }
  const sorted = sortByPath(byName.values(), (m) => m.name);
  const isLayer = (m: LayoutMember) => layers.has(m.name);

  // The layer rule: room before the first layer's data for the non-layer
  // blobs (files in the same folder) that sort after it.
  const first = sorted.findIndex(isLayer);
  let room = 0;
  if (first >= 0) {
    const dir = parentOf(sorted[first]!.name);
    for (const m of sorted.slice(first + 1)) {
      if (m.type !== 'file' || isLayer(m) || parentOf(m.name) !== dir) continue;
      const size = memberSize(m);
      room += headerOf(m, mtime).length + size + padding(size);
    }
  }

  const out: PlannedMember[] = [];
  let offset = 0;
  let firstLayer: PlannedMember | undefined;
  sorted.forEach((m, i) => {
    const size = memberSize(m);
    let header = headerOf(m, mtime);
    if (i === first && room > 0) header = headerOf(m, mtime, header.length + room);
    const p: PlannedMember = { member: m, size, header, offset, dataOffset: offset + header.length };
    if (i === first) firstLayer = p;
    out.push(p);
    offset = p.dataOffset + size + padding(size);
  });
  return { members: out, firstLayer, size: offset + 2 * BLOCK };
}

/**
 * The layer split: a pure function of the kept entries (their paths, origins
 * and sizes) and the manifest's `layering:`. Every entry lands in exactly one
 * layer (no whiteouts are ever needed: layers never overlap in files); a
 * layer also repeats the directories above its entries, with the same
 * metadata as the entry of that directory, so each layer unpacks alone and
 * any order of extraction gives the same tree.
 *
 * Strategies (SPEC §5):
 * - origin (default): packages (with the merged-/usr layout) | files: inputs |
 *   generated system files;
 * - per-package: one layer per package, biggest first; past the budget
 *   (which counts the files and generated layers too) the smaller packages
 *   share one layer; then files: inputs, then generated files;
 * - single: one layer.
 * Layers that would be empty are left out (an image always has one layer).
 * The generated layer (accounts, status.d, SBOM) comes last: the SBOM lists
 * the digests of files: inputs, which are taken as their layer is written.
 */
import type { LayeringSpec } from '../manifest/types.js';
import type { LayerEntry } from './layer.js';
import { imageParent } from '../util/path-order.js';

export interface LayerGroup {
  /** What the layer holds: "packages", "package libc6", "packages (12 smaller)", "files", "generated", "all". */
  name: string;
  entries: LayerEntry[];
}

type Kind = { rank: number; key: string };

function kindOf(origin: string | undefined, strategy: LayeringSpec['strategy']): Kind {
  if (strategy === 'single') return { rank: 0, key: 'all' };
  // The merged-/usr layout (/bin -> usr/bin, ...) belongs with the packages.
  if (origin === 'layout') return { rank: 0, key: strategy === 'per-package' ? 'layout' : 'packages' };
  if (origin?.startsWith('pkg:'))
    return { rank: 0, key: strategy === 'per-package' ? `package ${origin.slice(4)}` : 'packages' };
  if (origin?.startsWith('file:')) return { rank: 1, key: 'files' };
  return { rank: 2, key: 'generated' };
}

export function splitLayers(entries: LayerEntry[], spec: LayeringSpec): LayerGroup[] {
  const byPath = new Map(entries.map((e) => [e.path, e]));
  // Hardlinks go with the file they link to (one group per inode).
  const ownerOf = (e: LayerEntry): LayerEntry => {
    let cur = e;
    for (let hops = 0; cur.type === 'hardlink' && cur.linkTarget && hops < 64; hops++) {
      const next = byPath.get(cur.linkTarget);
      if (!next) break;
      cur = next;
    }
    return cur;
  };
  const groups = new Map<string, { kind: Kind; entries: LayerEntry[]; bytes: number }>();
  for (const e of entries) {
    const kind = kindOf(ownerOf(e).origin, spec.strategy);
    let g = groups.get(kind.key);
    if (!g) groups.set(kind.key, (g = { kind, entries: [], bytes: 0 }));
    g.entries.push(e);
    if (e.type === 'file') g.bytes += e.size;
  }

  let ordered = [...groups.values()].sort(
    (a, b) =>
      a.kind.rank - b.kind.rank ||
      b.bytes - a.bytes ||
      (a.kind.key < b.kind.key ? -1 : a.kind.key > b.kind.key ? 1 : 0),
  );
  if (spec.strategy === 'per-package') {
    const packages = ordered.filter((g) => g.kind.rank === 0);
    const rest = ordered.filter((g) => g.kind.rank !== 0);
    const room = Math.max(1, spec.budget - 2);
    if (packages.length > room) {
      const alone = packages.slice(0, room - 1);
      const shared = packages.slice(room - 1);
      const merged = {
        kind: { rank: 0, key: `packages (${shared.length} smaller)` },
        entries: shared.flatMap((g) => g.entries),
        bytes: shared.reduce((n, g) => n + g.bytes, 0),
      };
      ordered = [...alone, merged, ...rest];
    }
  }
  if (ordered.length === 0) return [{ name: spec.strategy === 'single' ? 'all' : 'generated', entries: [] }];

  return ordered.map((g) => {
    const own = new Set(g.entries.map((e) => e.path));
    const out = [...g.entries];
    // The directories above this layer's entries, as the kept set has them.
    for (const e of g.entries) {
      for (let d = imageParent(e.path); d !== '/'; d = imageParent(d)) {
        if (own.has(d)) break;
        own.add(d);
        const dir = byPath.get(d);
        if (dir) out.push(dir);
      }
    }
    return { name: g.kind.key, entries: out };
  });
}

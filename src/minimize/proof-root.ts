/**
 * The minimized root a proof round runs in, as the paths the sandbox hides:
 * the staging root's overlay with every entry outside the keep set left out
 * (tracer --hide). Nothing is copied or linked, and the staging root and the
 * cached package root under it are never written.
 */
import type { StagingRoot } from '../stage/types.js';
import { imageParent } from '../util/path-order.js';

/**
 * The entries to hide for `keep`: each one not kept and not the parent of a
 * kept path, whose own parent stays (hiding a directory hides what is in it).
 * Sorted, so the same keep set always gives the same list.
 */
export function hiddenPaths(root: StagingRoot, keep: ReadonlySet<string>): string[] {
  const stays = new Set<string>(['/']);
  for (const p of keep) {
    for (let q = p; q !== '/' && !stays.has(q); q = imageParent(q)) stays.add(q);
  }
  const out: string[] = [];
  for (const p of root.entries.keys()) {
    if (p === '/' || stays.has(p) || !stays.has(imageParent(p))) continue;
    out.push(p);
  }
  return out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

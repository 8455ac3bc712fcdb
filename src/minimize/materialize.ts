/**
 * Materialize a keep set: a fresh directory holding only the kept entries,
 * files hardlinked from the staging root (copied when that is not possible),
 * symlinks recreated, hardlink groups linked to one inode.
 */
import { chmodSync, copyFileSync, linkSync, mkdirSync, symlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import type { StagingRoot } from '../stage/types.js';

/**
 * Synchronous calls: thousands of small file-system operations, where a
 * thread-pool round trip each cost more than the operation.
 */
export async function materialize(root: StagingRoot, keep: Set<string>, dir: string): Promise<void> {
  mkdirSync(dir, { recursive: false, mode: 0o755 });
  const paths = [...keep].sort();
  const dirs: [string, number][] = [];
  const made = new Set<string>([dir]);
  const parent = (dst: string): void => {
    const d = dirname(dst);
    if (made.has(d)) return;
    // A directory missing from the index (never expected from staging) is created 0755.
    mkdirSync(d, { recursive: true, mode: 0o755 });
    made.add(d);
  };
  for (const p of paths) {
    const e = root.entries.get(p);
    if (!e) continue;
    const dst = p === '/' ? dir : dir + p;
    if (p !== '/') parent(dst);
    switch (e.type) {
      case 'dir':
        if (p !== '/' && !made.has(dst)) {
          mkdirSync(dst, { recursive: true, mode: 0o755 });
          made.add(dst);
        }
        dirs.push([dst, e.mode & 0o7777]);
        break;
      case 'symlink':
        // A disk root's own symlink is linked (a tenth of the cost of symlink() here; its target cannot change).
        if (!(root.kind === 'disk' && tryLink(root.dir + p, dst))) symlinkSync(e.linkTarget ?? '', dst);
        break;
      case 'file':
        linkOrCopy(e.hostPath ?? root.dir + p, dst, e.mode);
        break;
      case 'hardlink': {
        const primary = e.linkTarget ?? '';
        const src = keep.has(primary) ? dir + primary : (root.entries.get(primary)?.hostPath ?? root.dir + primary);
        linkOrCopy(src, dst, e.mode);
        break;
      }
    }
  }
  for (const [d, mode] of dirs.reverse()) chmodSync(d, mode);
}

function tryLink(src: string, dst: string): boolean {
  try {
    linkSync(src, dst);
    return true;
  } catch {
    return false;
  }
}

function linkOrCopy(src: string, dst: string, mode: number): void {
  try {
    linkSync(src, dst);
  } catch {
    copyFileSync(src, dst);
    chmodSync(dst, mode & 0o7777);
  }
}

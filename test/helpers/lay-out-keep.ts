/**
 * For tests that run a minimized root under runc: a fresh directory holding
 * only the kept entries of a staging root (copies, so the cached package root
 * under it is never linked), symlinks made anew, hardlink groups one inode.
 */
import { chmodSync, copyFileSync, linkSync, mkdirSync, symlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import type { StagingRoot } from '../../src/stage/types.js';

export function layOutKeep(root: StagingRoot, keep: Set<string>, dir: string): void {
  mkdirSync(dir, { mode: 0o755 });
  const dirs: [string, number][] = [];
  for (const p of [...keep].sort()) {
    const e = root.entries.get(p);
    if (!e || p === '/') continue;
    const dst = dir + p;
    mkdirSync(dirname(dst), { recursive: true, mode: 0o755 });
    if (e.type === 'dir') {
      mkdirSync(dst, { recursive: true, mode: 0o755 });
      dirs.push([dst, e.mode & 0o7777]);
    } else if (e.type === 'symlink') symlinkSync(e.linkTarget ?? '', dst);
    else if (e.type === 'file') {
      copyFileSync(root.hostFile(p), dst);
      chmodSync(dst, e.mode & 0o7777);
    } else {
      const primary = e.linkTarget ?? '';
      if (keep.has(primary)) linkSync(dir + primary, dst);
      else {
        copyFileSync(root.hostFile(primary), dst);
        chmodSync(dst, e.mode & 0o7777);
      }
    }
  }
  for (const [d, mode] of dirs.reverse()) chmodSync(d, mode);
}

/**
 * Materialize a keep set: a fresh directory holding only the kept entries,
 * files hardlinked from the staging root (copied when that is not possible),
 * symlinks recreated, hardlink groups linked to one inode.
 */
import { chmod, copyFile, link, mkdir, symlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { StagingRoot } from '../stage/types.js';

export async function materialize(root: StagingRoot, keep: Set<string>, dir: string): Promise<void> {
  await mkdir(dir, { recursive: false, mode: 0o755 });
  const paths = [...keep].sort();
  const dirs: [string, number][] = [];
  for (const p of paths) {
    const e = root.entries.get(p);
    if (!e) continue;
    const dst = p === '/' ? dir : dir + p;
    // A directory missing from the index (never expected from staging) is created 0755.
    if (p !== '/') await mkdir(dirname(dst), { recursive: true, mode: 0o755 });
    switch (e.type) {
      case 'dir':
        if (p !== '/') await mkdir(dst, { recursive: true, mode: 0o755 });
        dirs.push([dst, e.mode & 0o7777]);
        break;
      case 'symlink':
        await symlink(e.linkTarget ?? '', dst);
        break;
      case 'file':
        await linkOrCopy(e.hostPath ?? root.dir + p, dst, e.mode);
        break;
      case 'hardlink': {
        const primary = e.linkTarget ?? '';
        const src = keep.has(primary) ? dir + primary : (root.entries.get(primary)?.hostPath ?? root.dir + primary);
        await linkOrCopy(src, dst, e.mode);
        break;
      }
    }
  }
  for (const [d, mode] of dirs.reverse()) await chmod(d, mode);
}

async function linkOrCopy(src: string, dst: string, mode: number): Promise<void> {
  try {
    await link(src, dst);
  } catch {
    await copyFile(src, dst);
    await chmod(dst, mode & 0o7777);
  }
}

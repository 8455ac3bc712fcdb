/**
 * Glob patterns over a staging root's index: the answers a directory walk
 * from the root gives (dot files included, symlinked directories not walked
 * into, the pattern's fixed leading directories followed through symlinks),
 * without touching the disk. Keep-groups, keep and exclude globs and
 * ld.so.conf includes are matched here; walking the disk for them cost a
 * tenth of a warm build.
 */
import picomatch from 'picomatch';
import type { StagingRoot } from './types.js';
import { joinImage, splitPath } from './root.js';

const GLOB_CHARS = /[*?[\]{}()!+@]/;

/** The image paths `pattern` (absolute) matches in `root`, spelled as the pattern spells them, sorted. */
export function globRoot(root: StagingRoot, pattern: string): string[] {
  const parts = splitPath(pattern);
  if (parts.length === 0) return ['/'];
  const firstGlob = parts.findIndex((p) => GLOB_CHARS.test(p));
  if (firstGlob < 0) {
    const path = joinImage(parts);
    return safeResolve(root, path, false)?.exists ? [path] : [];
  }
  const spelled = joinImage(parts.slice(0, firstGlob));
  const base = safeResolve(root, spelled, true);
  if (!base?.exists || base.kind !== 'dir') return [];
  const under = base.path === '/' ? '/' : `${base.path}/`;
  const matches = picomatch(parts.slice(firstGlob).join('/'), { dot: true });
  const prefix = spelled === '/' ? '/' : `${spelled}/`;
  const out: string[] = [];
  for (const p of root.entries.keys()) {
    if (p.length <= under.length || !p.startsWith(under)) continue;
    const rel = p.slice(under.length);
    if (matches(rel)) out.push(prefix + rel);
  }
  return out.sort();
}

function safeResolve(root: StagingRoot, path: string, followLast: boolean) {
  try {
    return root.resolve(path, { followLast });
  } catch {
    return undefined; // a symlink loop matches nothing
  }
}

/**
 * The root file system of an image, from its cached layers: with one layer
 * its unpacked folder is the root as it is; with several, a merged folder
 * keyed by the chain of diff_ids (<cache>/rootfs/chain/<sha256>/root) is made
 * once from the layers in order, by hardlinks (no file is copied), applying
 * OCI whiteouts (`.wh.NAME` removes NAME, `.wh..wh..opq` empties its
 * directory). The sandbox mounts it read-only, so shared inodes are never
 * written through.
 */
import {
  existsSync,
  lchownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { OPAQUE, SANDBOX_ID_BASE, SHIFT_OWNERS, WHITEOUT_PREFIX, temporaries } from './unpack.js';

/** lstat-walk `rel` in `root`: true when every parent is a real directory (never through a symlink). */
function parentsAreDirs(root: string, rel: string): boolean {
  const parts = rel.split('/');
  let p = root;
  for (let i = 0; i < parts.length - 1; i++) {
    p = join(p, parts[i]!);
    try {
      if (!lstatSync(p).isDirectory()) return false;
    } catch {
      return false;
    }
  }
  return true;
}

function removeIn(root: string, rel: string): void {
  if (parentsAreDirs(root, rel)) rmSync(join(root, rel), { recursive: true, force: true });
}

function kindAt(p: string): 'dir' | 'other' | 'none' {
  try {
    return lstatSync(p).isDirectory() ? 'dir' : 'other';
  } catch {
    return 'none';
  }
}

/** Lay `src` (one layer's root/) over `dst`, which was made from the layers below it. */
function overlay(src: string, dst: string): void {
  for (const e of readdirSync(src, { withFileTypes: true })) {
    const s = join(src, e.name);
    const d = join(dst, e.name);
    const at = kindAt(d);
    if (e.isDirectory()) {
      if (at === 'other') rmSync(d, { force: true });
      const st = lstatSync(s);
      if (at !== 'dir') mkdirSync(d, st.mode & 0o7777);
      if (SHIFT_OWNERS) lchownSync(d, st.uid, st.gid); // the upper layer's owner, as a later tar entry would set it
      overlay(s, d);
      continue;
    }
    if (at !== 'none') rmSync(d, { recursive: true, force: true });
    if (e.isSymbolicLink()) {
      symlinkSync(readlinkSync(s), d);
      if (SHIFT_OWNERS) {
        const st = lstatSync(s);
        lchownSync(d, st.uid, st.gid);
      }
    } else linkSync(s, d);
  }
}

export function chainKey(diffIds: string[]): string {
  return createHash('sha256').update(diffIds.join('\n')).digest('hex');
}

/** The root folder for these layers (folders from unpackLayer, bottom first); made once. */
export function assembleRoot(
  cacheDir: string,
  layerDirs: string[],
  diffIds: string[],
): { root: string; made: boolean } {
  if (layerDirs.length === 1) return { root: join(layerDirs[0]!, 'root'), made: false };
  const final = join(cacheDir, 'rootfs', 'chain', chainKey(diffIds));
  if (existsSync(final)) return { root: join(final, 'root'), made: false };
  const parent = join(cacheDir, 'rootfs', 'chain');
  mkdirSync(parent, { recursive: true });
  const tmp = join(parent, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  const root = join(tmp, 'root');
  temporaries.add(tmp);
  mkdirSync(root, { recursive: true, mode: 0o755 });
  if (SHIFT_OWNERS) lchownSync(root, SANDBOX_ID_BASE, SANDBOX_ID_BASE);
  try {
    for (const dir of layerDirs) {
      const whiteouts = readFileSync(join(dir, 'whiteouts'), 'utf8').split('\n').filter(Boolean);
      for (const w of whiteouts) {
        const slash = w.lastIndexOf('/');
        const parentRel = slash === -1 ? '' : w.slice(0, slash);
        const base = w.slice(slash + 1);
        if (base === OPAQUE) {
          const pd = join(root, parentRel);
          if ((parentRel === '' || parentsAreDirs(root, parentRel + '/x')) && kindAt(pd) === 'dir')
            for (const n of readdirSync(pd)) rmSync(join(pd, n), { recursive: true, force: true });
        } else removeIn(root, (parentRel ? parentRel + '/' : '') + base.slice(WHITEOUT_PREFIX.length));
      }
      overlay(join(dir, 'root'), root);
    }
    try {
      renameSync(tmp, final);
    } catch (e) {
      if (!existsSync(final)) throw e;
      rmSync(tmp, { recursive: true, force: true });
    }
    return { root: join(final, 'root'), made: true };
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  } finally {
    temporaries.delete(tmp);
  }
}

/**
 * The manifest's `files:` section: host files and directory trees copied into
 * the staging root under the rules in spec/deb-and-staging.md. Nothing of the
 * host's mtime, owner or directory order reaches the index: modes come from
 * one rule (0644, or 0755 when any execute bit is set; directories 0755;
 * symlinks 0777), owners are 0:0 unless given, trees are walked sorted.
 */
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink, rm, stat, symlink, rename } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { MkimgError } from '../util/errors.js';
import { canonicalJson } from '../util/canonical-json.js';
import { sha256File } from '../util/digest.js';
import type { FileInput } from '../manifest/types.js';
import type { StageEntry, StagingRoot } from './types.js';
import { ensureDir, hostKind, imageBasename, imageDirname, imageJoin, tempName, writeNewFile } from './fsutil.js';
import { joinImage, splitPath } from './root.js';

export type TreeEntryType = 'file' | 'dir' | 'symlink';

/** One row of the tree digest: [relative path, type, executable, sha256 | link target | ""]. */
export type TreeRow = [string, TreeEntryType, boolean, string];

function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function missing(src: string, label: string, e: unknown): MkimgError {
  return new MkimgError('manifest', `${label}: ${src} does not exist (${(e as NodeJS.ErrnoException).code ?? String(e)})`, {
    hint: 'fix the path in the manifest (relative paths are resolved against the manifest\'s folder)',
  });
}

/**
 * Walk a host directory tree, sorted by name at every level, never following
 * symlinks. Yields rows relative to `dir` ("a", "a/b"); the top itself is not listed.
 */
async function* walk(dir: string, rel: string, label: string): AsyncGenerator<{ rel: string; host: string; type: TreeEntryType; exec: boolean }> {
  const names = (await readdir(dir)).sort(byCodeUnit);
  for (const n of names) {
    const host = dir + '/' + n;
    const r = rel === '' ? n : rel + '/' + n;
    const st = await lstat(host);
    if (st.isSymbolicLink()) yield { rel: r, host, type: 'symlink', exec: false };
    else if (st.isFile()) yield { rel: r, host, type: 'file', exec: (st.mode & 0o111) !== 0 };
    else if (st.isDirectory()) {
      yield { rel: r, host, type: 'dir', exec: false };
      yield* walk(host, r, label);
    } else {
      throw new MkimgError('manifest', `${label}: ${host} is neither a file, a directory nor a symlink`, {
        hint: 'files: inputs may hold only regular files, directories and symlinks; remove sockets, fifos and device nodes from the tree',
      });
    }
  }
}

/** The rows of a directory's tree digest, sorted by relative path. */
export async function treeRows(dir: string, label = dir): Promise<TreeRow[]> {
  const rows: TreeRow[] = [];
  for await (const e of walk(dir, '', label)) {
    const v = e.type === 'file' ? (await sha256File(e.host)).hex : e.type === 'symlink' ? await readlink(e.host) : '';
    rows.push([e.rel, e.type, e.exec, v]);
  }
  return rows.sort((a, b) => byCodeUnit(a[0], b[0]));
}

/**
 * sha256 hex of a file's bytes; for a directory, the tree digest: sha256 of the
 * canonical JSON of treeRows(). A symlink given as src is followed.
 */
export async function inputDigest(src: string, label = src): Promise<string> {
  let st;
  try {
    st = await stat(src);
  } catch (e) {
    throw missing(src, label, e);
  }
  if (st.isFile()) return (await sha256File(src)).hex;
  if (st.isDirectory()) return createHash('sha256').update(canonicalJson(await treeRows(src, label))).digest('hex');
  throw new MkimgError('manifest', `${label}: ${src} is neither a file nor a directory`);
}

export async function addFileInputs(root: StagingRoot, inputs: FileInput[]): Promise<void> {
  // Validate every input (existence, dest, pins) before writing anything.
  const plan: { input: FileInput; label: string; dest: string; isDir: boolean }[] = [];
  for (let i = 0; i < inputs.length; i++) {
    const input = inputs[i];
    const label = `files[${i}].src`;
    let st;
    try {
      st = await stat(input.src);
    } catch (e) {
      throw missing(input.src, label, e);
    }
    if (!st.isFile() && !st.isDirectory()) throw new MkimgError('manifest', `${label}: ${input.src} is neither a file nor a directory`);
    if (!input.dest.startsWith('/')) {
      throw new MkimgError('manifest', `files[${i}].dest: "${input.dest}" must be an absolute image path`);
    }
    const parts = splitPath(input.dest);
    if (parts.includes('..')) throw new MkimgError('manifest', `files[${i}].dest: "${input.dest}" must not contain ".."`);
    if (parts.length === 0 && !st.isDirectory()) throw new MkimgError('manifest', `files[${i}].dest: a file cannot be copied onto "/"`);
    if (input.sha256 !== undefined) {
      const actual = await inputDigest(input.src, label);
      if (actual !== input.sha256.toLowerCase()) {
        throw new MkimgError('input', `${label}: ${input.src} changed: expected sha256 ${input.sha256}, got ${actual}`, {
          hint: 'if the change was intended, run `mkimg lock` to pin the new content',
          details: { src: input.src, expected: input.sha256, actual },
        });
      }
    }
    plan.push({ input, label, dest: joinImage(parts), isDir: st.isDirectory() });
  }
  for (const p of plan) {
    const origin = `file:${p.dest}`;
    const uid = p.input.uid ?? 0;
    const gid = p.input.gid ?? 0;
    const fileMode = (exec: boolean) => (p.input.mode !== undefined ? p.input.mode & 0o7777 : exec ? 0o755 : 0o644);
    const escape = (why: string) => new MkimgError('input', `files: dest ${p.dest}: ${why}`);
    if (!p.isDir) {
      const st = await stat(p.input.src);
      const parent = await ensureDir(root, imageDirname(p.dest), origin, () => {}, escape);
      await placeFile(root, imageJoin(parent, imageBasename(p.dest)), p.input.src, fileMode((st.mode & 0o111) !== 0), uid, gid, origin);
      continue;
    }
    // A directory tree: the top lands at dest (kept if it exists), then every entry below it.
    const top = await ensureDir(root, p.dest, origin, () => {}, escape);
    if (root.entries.get(top)?.origin === origin) {
      root.entries.set(top, { path: top, type: 'dir', mode: 0o755, uid, gid, size: 0, origin });
    }
    for await (const e of walk(p.input.src, '', p.label)) {
      const want = joinImage([...splitPath(top), ...e.rel.split('/')]);
      if (e.type === 'dir') {
        const d = await ensureDir(root, want, origin, () => {}, escape);
        if (root.entries.get(d)?.origin === origin) root.entries.set(d, { path: d, type: 'dir', mode: 0o755, uid, gid, size: 0, origin });
        continue;
      }
      const parent = await ensureDir(root, imageDirname(want), origin, () => {}, escape);
      const final = imageJoin(parent, imageBasename(want));
      if (e.type === 'file') await placeFile(root, final, e.host, fileMode(e.exec), uid, gid, origin);
      else await placeSymlink(root, final, await readlink(e.host), uid, gid, origin);
    }
  }
}

/** Remove what sits at an image path (a file or a link) so a files: input can replace it. Directories are not replaced. */
async function clear(root: StagingRoot, path: string): Promise<void> {
  const k = await hostKind(root.dir + path);
  if (k === null) return;
  if (k === 'dir') {
    throw new MkimgError('input', `files: cannot put a file or link at ${path}: a directory is there (${root.entries.get(path)?.origin ?? 'unindexed'})`, {
      hint: 'choose a dest that is not an existing directory',
    });
  }
  await rm(root.dir + path, { force: true });
  const old = root.entries.get(path);
  root.entries.delete(path);
  if (old?.type === 'file') promoteHardlinks(root, old);
}

/**
 * A replaced file may lead a hardlink group (a package's hardlinks name it as
 * linkTarget). Its other names keep the old content on disk, so the first of
 * them (in path order) becomes the group's file and the rest link to it.
 */
function promoteHardlinks(root: StagingRoot, old: StageEntry): void {
  const names = [...root.entries.values()].filter((e) => e.type === 'hardlink' && e.linkTarget === old.path).sort((a, b) => byCodeUnit(a.path, b.path));
  const [leader, ...rest] = names;
  if (!leader) return;
  const { linkTarget: _drop, ...base } = leader;
  void _drop;
  root.entries.set(leader.path, { ...base, type: 'file', size: old.size, hostPath: root.dir + leader.path, ...(old.sha256 ? { sha256: old.sha256 } : {}) });
  for (const r of rest) root.entries.set(r.path, { ...r, linkTarget: leader.path });
}

async function placeFile(root: StagingRoot, path: string, src: string, mode: number, uid: number, gid: number, origin: string): Promise<void> {
  const host = root.dir + path;
  const tmp = tempName(root.dir + imageDirname(path));
  let w;
  try {
    w = await writeNewFile(tmp, createReadStream(src, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>, mode);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  await clear(root, path).catch(async (e) => {
    await rm(tmp, { force: true });
    throw e;
  });
  await rename(tmp, host);
  const entry: StageEntry = { path, type: 'file', mode, uid, gid, size: w.size, hostPath: host, origin, sha256: w.sha256 };
  root.entries.set(path, entry);
}

async function placeSymlink(root: StagingRoot, path: string, target: string, uid: number, gid: number, origin: string): Promise<void> {
  await clear(root, path);
  await symlink(target, root.dir + path);
  root.entries.set(path, { path, type: 'symlink', mode: 0o777, uid, gid, size: 0, linkTarget: target, origin });
}

/**
 * The manifest's `files:` section: host files and directory trees copied into
 * the staging root under the rules in SPEC.md §7 (`files:` inputs). Nothing of the
 * host's mtime, owner or directory order reaches the index: modes come from
 * one rule (0644, or 0755 when any execute bit is set; directories 0755;
 * symlinks 0777), owners are 0:0 unless given, trees are walked sorted.
 */
import {
  closeSync,
  constants as fsConstants,
  fchmodSync,
  lstatSync,
  openSync,
  readdirSync,
  readlinkSync,
  readSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { stat } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { MkimgError } from '../util/errors.js';
import { canonicalJson } from '../util/canonical-json.js';
import { sha256FileSync } from '../util/digest.js';
import type { FileInput } from '../manifest/types.js';
import type { StageEntry, StagingRoot } from './types.js';
import { ensureDir, imageBasename, imageDirname, imageJoin, tempName } from './fsutil.js';
import { joinImage, splitPath } from './root.js';
import { InputHasher, readInput, readInputs, type InputDigests } from './read-inputs.js';

export type TreeEntryType = 'file' | 'dir' | 'symlink';

/** One row of the tree digest: [relative path, type, executable, sha256 | link target | ""]. */
export type TreeRow = [string, TreeEntryType, boolean, string];

function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function missing(src: string, label: string, e: unknown): MkimgError {
  return new MkimgError(
    'manifest',
    `${label}: ${src} does not exist (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
    {
      hint: "fix the path in the manifest (relative paths are resolved against the manifest's folder)",
    },
  );
}

/**
 * Walk a host directory tree, sorted by name at every level, never following
 * symlinks. Returns rows relative to `top` ("a", "a/b"); the top itself is not
 * listed. Synchronous on purpose: trees of thousands of small files walk several
 * times faster without a thread-pool round trip per call.
 */
interface WalkItem {
  rel: string;
  host: string;
  type: TreeEntryType;
  exec: boolean;
  /** lstat size of a file (a hint: the bytes read decide). */
  size: number;
  /** A symlink's target, read once. */
  target?: string;
}

function walk(top: string, label: string): WalkItem[] {
  const out: WalkItem[] = [];
  const notAllowed = (host: string) =>
    new MkimgError('manifest', `${label}: ${host} is neither a file, a directory nor a symlink`, {
      hint: 'files: inputs may hold only regular files, directories and symlinks; remove sockets, fifos and device nodes from the tree',
    });
  const visit = (dir: string, rel: string): void => {
    // The directory entry's type saves an lstat for directories and links;
    // files need one anyway (size, execute bit). A file system that reports
    // no type gets an lstat for everything.
    const entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => byCodeUnit(a.name, b.name));
    for (const d of entries) {
      const host = dir + '/' + d.name;
      const r = rel === '' ? d.name : rel + '/' + d.name;
      // A path the kernel would refuse (here, or in the image under its dest): one clear line, not ENAMETOOLONG.
      if (Buffer.byteLength(host) >= 4096 || Buffer.byteLength(r) >= 4096) {
        throw new MkimgError(
          'manifest',
          `${label}: ${r.slice(0, 80)}... is nested too deeply: its path passes the 4095 bytes a path may have`,
          {
            hint: 'flatten that part of the tree, or leave it out of the files: input',
          },
        );
      }
      if (d.isDirectory()) {
        out.push({ rel: r, host, type: 'dir', exec: false, size: 0 });
        visit(host, r);
      } else if (d.isSymbolicLink()) {
        out.push({ rel: r, host, type: 'symlink', exec: false, size: 0, target: readlinkSync(host) });
      } else if (d.isFile() || !(d.isFIFO() || d.isSocket() || d.isBlockDevice() || d.isCharacterDevice())) {
        const st = lstatSync(host);
        if (st.isFile()) out.push({ rel: r, host, type: 'file', exec: (st.mode & 0o111) !== 0, size: st.size });
        else if (st.isDirectory()) {
          out.push({ rel: r, host, type: 'dir', exec: false, size: 0 });
          visit(host, r);
        } else if (st.isSymbolicLink())
          out.push({ rel: r, host, type: 'symlink', exec: false, size: 0, target: readlinkSync(host) });
        else throw notAllowed(host);
      } else {
        throw notAllowed(host);
      }
    }
  };
  visit(top, '');
  return out;
}

/** The rows of a directory's tree digest, sorted by relative path (files hashed as a build hashes them). */
export async function treeRows(dir: string, label = dir): Promise<TreeRow[]> {
  const items = walk(dir, label);
  const files = items.filter((e) => e.type === 'file');
  const read = await readInputs(
    files.map((e) => e.host),
    { totalBytes: files.reduce((n, e) => n + e.size, 0) },
  );
  return rowsOf(items, new Map(files.map((e, i) => [e.host, read[i]])));
}

/** Tree-digest rows of walked items, with file digests from `known`. */
function rowsOf(items: WalkItem[], known: Map<string, { sha256: string }>): TreeRow[] {
  const rows: TreeRow[] = items.map((e) => [
    e.rel,
    e.type,
    e.exec,
    e.type === 'file' ? known.get(e.host)!.sha256 : e.type === 'symlink' ? e.target! : '',
  ]);
  return rows.sort((a, b) => byCodeUnit(a[0], b[0]));
}

/** The tree digest of rows: sha256 of their canonical JSON. */
function rowsDigest(rows: TreeRow[]): string {
  return createHash('sha256').update(canonicalJson(rows)).digest('hex');
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
  if (st.isFile()) return sha256FileSync(src).hex;
  if (st.isDirectory()) return rowsDigest(await treeRows(src, label));
  throw new MkimgError('manifest', `${label}: ${src} is neither a file nor a directory`);
}

/**
 * The pins of `files:` inputs and the digests of the bytes read from them.
 * Staged on disk, every file is hashed (and its pin checked) before anything
 * is copied. Indexed in place (`materialize: false`), nothing is read while
 * staging: the layer writer records the digests of exactly the bytes it puts
 * in the image, and `check()` compares the pins with them before the image
 * is put in place.
 */
export class InputPins {
  private readonly known = new Map<string, InputDigests>();
  /** Every input file, each once, in walk order, with its lstat size. */
  private readonly sizes = new Map<string, number>();

  constructor(private readonly plan: readonly PlannedInput[]) {
    for (const p of plan) for (const e of p.items) if (e.type === 'file') this.sizes.set(e.host, e.size);
  }

  /** The digests of a host file's bytes as read. Two reads of one file (two dests) must agree. */
  record(host: string, d: InputDigests): void {
    const prev = this.known.get(host);
    if (prev !== undefined && (prev.sha256 !== d.sha256 || prev.size !== d.size)) {
      throw new MkimgError('input', `files: ${host} changed while it was being read`, {
        hint: 'build again once the file is no longer being written',
      });
    }
    this.known.set(host, d);
  }

  /** Read and record these host files now (on two threads when there are many). */
  async hash(hosts: readonly string[], hasher?: InputHasher): Promise<InputDigests[]> {
    const total = hosts.reduce((n, h) => n + (this.sizes.get(h) ?? 0), 0);
    const read = hasher
      ? await hasher.hash(hosts, { totalBytes: total })
      : await readInputs(hosts, { totalBytes: total });
    hosts.forEach((h, i) => this.record(h, read[i]));
    return read;
  }

  /**
   * Compare every pin, in manifest order, with the recorded digests; a file
   * never recorded (replaced by a later input, so not in the image) is read now.
   */
  check(): void {
    for (const p of this.plan) {
      if (p.input.sha256 === undefined) continue;
      for (const e of p.items) if (e.type === 'file' && !this.known.has(e.host)) this.record(e.host, readInput(e.host));
      const actual = p.isDir ? rowsDigest(rowsOf(p.items, this.known)) : this.known.get(p.input.src)!.sha256;
      if (actual !== p.input.sha256.toLowerCase()) {
        throw new MkimgError(
          'input',
          `${p.label}: ${p.input.src} changed: expected sha256 ${p.input.sha256}, got ${actual}`,
          {
            hint: 'if the change was intended, run `mkimg lock` to pin the new content',
            details: { src: p.input.src, expected: p.input.sha256, actual },
          },
        );
      }
    }
  }

  /** Every input file, each once, in walk order. */
  get hosts(): string[] {
    return [...this.sizes.keys()];
  }

  digests(host: string): InputDigests | undefined {
    return this.known.get(host);
  }
}

interface PlannedInput {
  input: FileInput;
  label: string;
  dest: string;
  isDir: boolean;
  items: WalkItem[];
}

/**
 * `materialize: false` indexes files without copying or reading them: their
 * entries' hostPath is the input file itself, with no digests yet (see
 * InputPins). For builds that run nothing in the staging root (`minimize:
 * false`), that saves a copy and a read of every input.
 */
export async function addFileInputs(
  root: StagingRoot,
  inputs: FileInput[],
  opts: { materialize?: boolean } = {},
): Promise<InputPins> {
  const materialize = opts.materialize ?? root.kind === 'disk';
  // Trees may hold thousands of files: a second hashing thread joins when a set is big.
  const hasher = inputs.length > 0 && materialize ? await InputHasher.start() : undefined;
  try {
    return await addWithHasher(root, inputs, materialize, hasher);
  } finally {
    hasher?.close();
  }
}

async function addWithHasher(
  root: StagingRoot,
  inputs: FileInput[],
  materialize: boolean,
  hasher: InputHasher | undefined,
): Promise<InputPins> {
  // 1. Validate every input (existence, dest) and walk each tree once, before anything is written.
  const plan: PlannedInput[] = [];
  for (let i = 0; i < inputs.length; i++) {
    const input = inputs[i];
    const label = `files[${i}].src`;
    let st;
    try {
      st = await stat(input.src);
    } catch (e) {
      throw missing(input.src, label, e);
    }
    if (!st.isFile() && !st.isDirectory())
      throw new MkimgError('manifest', `${label}: ${input.src} is neither a file nor a directory`);
    if (!input.dest.startsWith('/')) {
      throw new MkimgError('manifest', `files[${i}].dest: "${input.dest}" must be an absolute image path`);
    }
    const parts = splitPath(input.dest);
    if (parts.includes('..'))
      throw new MkimgError('manifest', `files[${i}].dest: "${input.dest}" must not contain ".."`);
    if (parts.length === 0 && !st.isDirectory())
      throw new MkimgError('manifest', `files[${i}].dest: a file cannot be copied onto "/"`);
    const items = st.isDirectory()
      ? walk(input.src, label)
      : [{ rel: '', host: input.src, type: 'file' as const, exec: (st.mode & 0o111) !== 0, size: st.size }];
    plan.push({ input, label, dest: joinImage(parts), isDir: st.isDirectory(), items });
  }
  const pins = new InputPins(plan);

  // 2. Staged on disk: hash every file (on two threads when there are many)
  // and check the pins, in manifest order, before anything is copied. The
  // bytes are hashed once more as they are copied into the root, so a file
  // that changes after this check is caught. (Keeping the bytes in memory
  // instead costs more than reading them again from the page cache: fresh
  // memory is dear, a reused buffer is not.)
  if (materialize) {
    await pins.hash(pins.hosts, hasher);
    pins.check();
  }
  const known = (host: string) => pins.digests(host);

  // 3. Into the root.
  // Resolved directories, so each parent is resolved once per tree, not once per file.
  const dirs = new Map<string, string>();
  for (const p of plan) {
    const origin = `file:${p.dest}`;
    const uid = p.input.uid ?? 0;
    const gid = p.input.gid ?? 0;
    const fileMode = (exec: boolean) => (p.input.mode !== undefined ? p.input.mode & 0o7777 : exec ? 0o755 : 0o644);
    const escape = (why: string) => new MkimgError('input', `files: dest ${p.dest}: ${why}`);
    if (!p.isDir) {
      const parent = await ensureDir(root, imageDirname(p.dest), origin, () => {}, escape);
      const dest = imageJoin(parent, imageBasename(p.dest));
      const mode = fileMode(p.items[0].exec);
      if (materialize) await placeFile(root, dest, p.input.src, mode, uid, gid, origin, known(p.input.src));
      else indexFile(root, dest, p.input.src, mode, uid, gid, origin, p.items[0].size);
      continue;
    }
    // A directory tree: the top lands at dest (kept if it exists), then every entry below it.
    const top = await ensureDir(root, p.dest, origin, () => {}, escape);
    if (root.entries.get(top)?.origin === origin) {
      root.entries.set(top, { path: top, type: 'dir', mode: 0o755, uid, gid, size: 0, origin });
    }
    for (const e of p.items) {
      const want = joinImage([...splitPath(top), ...e.rel.split('/')]);
      if (e.type === 'dir') {
        const d = await ensureDir(root, want, origin, () => {}, escape, dirs);
        if (root.entries.get(d)?.origin === origin)
          root.entries.set(d, { path: d, type: 'dir', mode: 0o755, uid, gid, size: 0, origin });
        continue;
      }
      const parent = await ensureDir(root, imageDirname(want), origin, () => {}, escape, dirs);
      const final = imageJoin(parent, imageBasename(want));
      if (e.type === 'file' && materialize)
        await placeFile(root, final, e.host, fileMode(e.exec), uid, gid, origin, known(e.host));
      else if (e.type === 'file') indexFile(root, final, e.host, fileMode(e.exec), uid, gid, origin, e.size);
      else await placeSymlink(root, final, e.target!, uid, gid, origin);
    }
  }
  return pins;
}

/** Remove what sits at an image path (a file or a link) so a files: input can replace it. Directories are not replaced. */
async function clear(root: StagingRoot, path: string): Promise<void> {
  // The index knows every path mkimg put in the root; nothing else writes there.
  if (!root.entries.has(path)) return;
  const k = root.kindAt(path);
  if (k === null) return;
  if (k === 'dir') {
    throw new MkimgError(
      'input',
      `files: cannot put a file or link at ${path}: a directory is there (${root.entries.get(path)?.origin ?? 'unindexed'})`,
      {
        hint: 'choose a dest that is not an existing directory',
      },
    );
  }
  root.remove(path);
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
  const names = [...root.entries.values()]
    .filter((e) => e.type === 'hardlink' && e.linkTarget === old.path)
    .sort((a, b) => byCodeUnit(a.path, b.path));
  const [leader, ...rest] = names;
  if (!leader) return;
  const { linkTarget: _drop, ...base } = leader;
  void _drop;
  // On disk the leader's own name still holds the content; in an index-only
  // root the content stays where the replaced entry pointed.
  const content =
    root.kind === 'index'
      ? { hostPath: old.hostPath, ...(old.contentOffset !== undefined ? { contentOffset: old.contentOffset } : {}) }
      : { hostPath: root.hostFile(leader.path) };
  root.entries.set(leader.path, {
    ...base,
    type: 'file',
    size: old.size,
    ...content,
    ...(old.sha256 ? { sha256: old.sha256 } : {}),
    ...(old.sha1 ? { sha1: old.sha1 } : {}),
  });
  for (const r of rest) root.entries.set(r.path, { ...r, linkTarget: leader.path });
}

async function placeFile(
  root: StagingRoot,
  path: string,
  src: string,
  mode: number,
  uid: number,
  gid: number,
  origin: string,
  pinned?: InputDigests,
): Promise<void> {
  const host = root.dir + path;
  root.hostDirFor(imageDirname(path));
  // A new temp name in a directory resolved inside the root: the copy never
  // goes through a symlink. Hashing while copying means the index's sha256 is
  // that of the bytes in the image, and a file that changed after its pin was
  // checked is caught.
  const tmp = tempName(root.dir + imageDirname(path));
  let copied: { sha256: string; sha1: string; size: number };
  try {
    copied = copyFileHashingSync(src, tmp, mode & 0o777);
    if (pinned !== undefined && copied.sha256 !== pinned.sha256) {
      throw new MkimgError(
        'input',
        `files: ${src} changed while it was being copied (its pin was checked a moment before)`,
        { hint: 'build again once the file is no longer being written' },
      );
    }
    await clear(root, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  renameSync(tmp, host);
  root.entries.set(path, {
    path,
    type: 'file',
    mode,
    uid,
    gid,
    size: copied.size,
    hostPath: host,
    origin,
    sha256: copied.sha256,
    sha1: copied.sha1,
  });
}

/**
 * Index an input file without copying or reading it (see addFileInputs'
 * `materialize`): the layer reads the input file itself, `size` bytes (the
 * walk's lstat; a file of another size when written is an error).
 */
function indexFile(
  root: StagingRoot,
  path: string,
  src: string,
  mode: number,
  uid: number,
  gid: number,
  origin: string,
  size: number,
): void {
  const prev = root.entries.get(path);
  if (prev?.type === 'dir') {
    throw new MkimgError('input', `files: cannot put a file at ${path}: a directory is there (${prev.origin})`, {
      hint: 'choose a dest that is not an existing directory',
    });
  }
  root.entries.set(path, { path, type: 'file', mode, uid, gid, size, hostPath: src, origin });
  if (prev?.type === 'file') promoteHardlinks(root, prev);
}

const copyBuf = Buffer.allocUnsafe(1 << 20);

/** Copy src to a new file dest (O_EXCL, O_NOFOLLOW) with the given mode, hashing the bytes. */
function copyFileHashingSync(src: string, dest: string, mode: number): { sha256: string; sha1: string; size: number } {
  const h = createHash('sha256');
  const h1 = createHash('sha1');
  const inFd = openSync(src, 'r');
  let outFd: number | undefined;
  let size = 0;
  try {
    outFd = openSync(
      dest,
      fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW,
      0o600,
    );
    for (;;) {
      const n = readSync(inFd, copyBuf, 0, copyBuf.length, null);
      if (n === 0) break;
      h.update(copyBuf.subarray(0, n));
      h1.update(copyBuf.subarray(0, n));
      let off = 0;
      while (off < n) off += writeSync(outFd, copyBuf, off, n - off);
      size += n;
    }
    fchmodSync(outFd, mode);
  } finally {
    closeSync(inFd);
    if (outFd !== undefined) closeSync(outFd);
  }
  return { sha256: h.digest('hex'), sha1: h1.digest('hex'), size };
}

async function placeSymlink(
  root: StagingRoot,
  path: string,
  target: string,
  uid: number,
  gid: number,
  origin: string,
): Promise<void> {
  await clear(root, path);
  root.laySymlink(path, target);
  root.entries.set(path, { path, type: 'symlink', mode: 0o777, uid, gid, size: 0, linkTarget: target, origin });
}

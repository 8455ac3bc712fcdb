/**
 * The last check of every build, minimized or not: the program the image
 * starts (config.entrypoint[0], or config.cmd[0] without an entrypoint)
 * exists in the final image as an executable regular file, and what the
 * kernel needs to start it is there too: the #! interpreter of a script, the
 * PT_INTERP loader of a dynamic ELF file. Checks may never have run the
 * entrypoint (explicit minimize.checks, or minimize: false), so this is
 * decided from the image's own files, not from a run.
 */
import { posix } from 'node:path';
import type { ImageConfig } from '../manifest/types.js';
import type { StageEntry, StagingRoot } from '../stage/types.js';
import { readEntryContent, readEntryHead } from '../stage/fsutil.js';
import { MkimgError } from '../util/errors.js';
import { DEFAULT_PATH } from '../oci/model.js';

type Lookup = { ok: true; path: string; entry: StageEntry } | { ok: false; reason: string };

/** Resolve an image path through symlinks, seeing only the kept paths (the final image). */
function lookupInImage(root: StagingRoot, keep: Set<string>, imagePath: string): Lookup {
  const present = (p: string): StageEntry | undefined => (p === '/' || keep.has(p) ? root.entries.get(p) : undefined);
  let pending = posix.normalize(imagePath).split('/').filter(Boolean);
  let cur = '/';
  let hops = 0;
  const via: string[] = [];
  while (pending.length > 0) {
    const part = pending.shift()!;
    const next = cur === '/' ? `/${part}` : `${cur}/${part}`;
    const e = present(next);
    if (!e) {
      const chain = via.length ? ` (through ${via.join(', ')})` : '';
      return {
        ok: false,
        reason: via.length
          ? `is a dangling symlink: ${next} is not in the image${chain}`
          : `does not exist in the image (${next} is missing)`,
      };
    }
    if (e.type === 'symlink' && e.linkTarget !== undefined) {
      if (++hops > 40) return { ok: false, reason: 'is a symlink loop' };
      via.push(`${next} -> ${e.linkTarget}`);
      const base = e.linkTarget.startsWith('/') ? '/' : cur;
      pending = [...posix.normalize(posix.join(base, e.linkTarget)).split('/').filter(Boolean), ...pending];
      cur = '/';
      continue;
    }
    if (pending.length > 0 && e.type !== 'dir')
      return { ok: false, reason: `does not exist in the image (${next} is not a directory)` };
    cur = next;
  }
  const entry = present(cur);
  if (!entry) return { ok: false, reason: 'does not exist in the image' };
  return { ok: true, path: cur, entry };
}

/** How much of a program checkStartCommand reads first. */
const HEAD_BYTES = 64 * 1024;

function contentOf(root: StagingRoot, e: StageEntry, max?: number): Buffer {
  if (e.type === 'hardlink' && e.linkTarget) e = root.entries.get(posix.normalize(e.linkTarget)) ?? e;
  return max === undefined ? readEntryContent(root.dir, e) : readEntryHead(root.dir, e, max);
}

/** PT_INTERP of a little-endian ELF file; undefined for a static or non-ELF file. */
export function elfInterpreter(b: Buffer): string | undefined {
  if (b.length < 52 || b.readUInt32BE(0) !== 0x7f454c46 || b[5] !== 1) return undefined;
  const is64 = b[4] === 2;
  const phoff = is64 ? Number(b.readBigUInt64LE(32)) : b.readUInt32LE(28);
  const phentsize = b.readUInt16LE(is64 ? 54 : 42);
  const phnum = b.readUInt16LE(is64 ? 56 : 44);
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (ph + (is64 ? 56 : 32) > b.length) return undefined;
    if (b.readUInt32LE(ph) !== 3) continue; // PT_INTERP
    const off = is64 ? Number(b.readBigUInt64LE(ph + 8)) : b.readUInt32LE(ph + 4);
    const size = is64 ? Number(b.readBigUInt64LE(ph + 32)) : b.readUInt32LE(ph + 16);
    if (off + size > b.length || size === 0) return undefined;
    return b
      .subarray(off, off + size)
      .toString('latin1')
      .replace(/\0.*$/s, '');
  }
  return undefined;
}

/** The interpreter named on a "#!" line. */
function shebangInterpreter(b: Buffer): string | undefined {
  if (b.length < 2 || b[0] !== 0x23 || b[1] !== 0x21) return undefined;
  const line = b.subarray(2, Math.min(b.length, 256)).toString('latin1').split('\n')[0].trim();
  return line.split(/[ \t]+/)[0] || undefined;
}

/** The command the image starts, and the config field that names it. */
export function startCommand(config: ImageConfig): { argv0: string; field: string } | undefined {
  if (config.entrypoint && config.entrypoint.length > 0)
    return { argv0: config.entrypoint[0], field: 'config.entrypoint[0]' };
  if (config.cmd && config.cmd.length > 0) return { argv0: config.cmd[0], field: 'config.cmd[0]' };
  return undefined;
}

/**
 * Throws MkimgError('check') (exit 10) naming the field when the image could
 * not start its command: missing, a directory, not executable, a dangling
 * symlink, or a missing #! interpreter or ELF loader. A bare name is looked
 * up on the image's PATH (config.env.PATH or the default), as runtimes do.
 */
export function checkStartCommand(root: StagingRoot, keep: Set<string>, config: ImageConfig): void {
  const start = startCommand(config);
  if (!start) return;
  const { argv0, field } = start;
  const fail = (what: string, hint: string): never => {
    throw new MkimgError('check', `${field} ${JSON.stringify(argv0)} ${what}: the image could not start`, { hint });
  };
  const keepHint =
    'add the package that ships it to packages:, keep it (minimize.keep, minimize.keepPackages) or run it in a minimize check';

  let target: string;
  if (argv0.includes('/')) {
    target = argv0.startsWith('/') ? argv0 : posix.join(config.workdir ?? '/', argv0);
  } else {
    const dirs = (config.env.PATH ?? DEFAULT_PATH).split(':').filter((d) => d.startsWith('/'));
    const found = dirs
      .map((d) => posix.join(d, argv0))
      .find((p) => {
        const r = lookupInImage(root, keep, p);
        return r.ok && r.entry.type !== 'dir';
      });
    if (!found) fail(`is not on the image's PATH (${dirs.join(':')})`, keepHint);
    target = found!;
  }

  const checkExecutable = (path: string, role: string, depth: number): void => {
    const r = lookupInImage(root, keep, path);
    const who = role === '' ? '' : `needs ${role} ${path}, which `;
    if (!r.ok) fail(`${who}${r.reason}`, keepHint);
    const ok = r as Extract<Lookup, { ok: true }>;
    if (ok.entry.type === 'dir') fail(`${who}is a directory`, 'point it at the program inside');
    if (ok.entry.type !== 'file' && ok.entry.type !== 'hardlink')
      fail(`${who}is a ${ok.entry.type}, not a program`, 'point it at a regular file');
    const mode =
      ok.entry.type === 'hardlink' && ok.entry.linkTarget
        ? (root.entries.get(ok.entry.linkTarget)?.mode ?? ok.entry.mode)
        : ok.entry.mode;
    if ((mode & 0o111) === 0)
      fail(
        `${who}is not executable (mode ${(mode & 0o7777).toString(8).padStart(4, '0')})`,
        'give it an execute bit (files: mode "0755")',
      );
    if (depth > 4) return;
    // The #! line and ELF program headers are at the start: the rest of a big program is not read.
    let bytes = contentOf(root, ok.entry, HEAD_BYTES);
    const interp = shebangInterpreter(bytes);
    if (interp !== undefined) {
      checkExecutable(interp, 'the #! interpreter', depth + 1);
      return;
    }
    if (bytes.length === HEAD_BYTES && elfInterpreter(bytes) === undefined) bytes = contentOf(root, ok.entry);
    const loader = elfInterpreter(bytes);
    if (loader !== undefined) {
      const l = lookupInImage(root, keep, loader);
      if (!l.ok) fail(`needs the ELF loader ${loader}, which ${l.reason}`, keepHint);
    }
  };
  checkExecutable(target, '', 0);
}

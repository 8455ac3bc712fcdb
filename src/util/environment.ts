/**
 * Failures of the machine rather than of mkimg or its inputs: a full disk, a
 * read-only or wrong-typed folder, too many open files. Each becomes one
 * MkimgError('environment') line (exit 15) naming what failed and what to do,
 * never an "internal error" with a stack trace.
 */
import { MkimgError } from './errors.js';

const WHAT: Record<string, { what: string; hint: string }> = {
  ENOSPC: {
    what: 'no space left on the device',
    hint: 'free space on that file system (or point --work-dir / -o / the cache elsewhere) and run again',
  },
  EDQUOT: { what: 'disk quota exceeded', hint: 'free space within your quota and run again' },
  EFBIG: { what: 'file too large for the file system', hint: 'write to another file system' },
  EROFS: {
    what: 'the file system is read-only',
    hint: 'point the output, --work-dir or the cache (MKIMG_CACHE_DIR) at a writable folder',
  },
  EACCES: { what: 'permission denied', hint: "fix the folder's permissions or point mkimg at a folder you can write" },
  EPERM: {
    what: 'operation not permitted',
    hint: "fix the folder's permissions or point mkimg at a folder you can write",
  },
  ENOTDIR: {
    what: 'a file stands where a folder is needed',
    hint: 'remove or move that file, or point mkimg at another folder',
  },
  EISDIR: {
    what: 'a folder stands where a file is needed',
    hint: "remove that folder (it is not mkimg's), or point mkimg at another folder",
  },
  EIO: { what: 'input/output error from the device', hint: 'check the disk' },
  EMFILE: { what: 'too many open files', hint: 'raise the open-file limit (ulimit -n)' },
  ENFILE: { what: 'too many open files on the system', hint: "raise the system's open-file limit" },
};

/** The environment error for a Node errno error of the kinds above, or undefined. */
export function environmentError(e: unknown, context?: string): MkimgError | undefined {
  if (e instanceof MkimgError || !(e instanceof Error)) return undefined;
  const code = (e as NodeJS.ErrnoException).code;
  if (typeof code !== 'string' || !(code in WHAT)) return undefined;
  const w = WHAT[code]!;
  const path = (e as NodeJS.ErrnoException).path;
  const where = context ?? (path ? path : undefined);
  const syscall = (e as NodeJS.ErrnoException).syscall;
  return new MkimgError(
    'environment',
    `${where ? `${where}: ` : ''}${w.what} (${code}${syscall ? ` in ${syscall}` : ''})`,
    {
      hint: w.hint,
      details: { code, ...(path ? { path } : {}) },
      cause: e,
    },
  );
}

/** Rethrow a machine failure as its environment error (others unchanged). */
export function asEnvironmentError(e: unknown, context?: string): unknown {
  return environmentError(e, context) ?? e;
}

/**
 * Files named on the command line (a manifest, a signature, a key): reading
 * one that is missing or unreadable is a usage error (exit 2, SPEC §4) whose
 * message names the file and says what is wrong with it in words, not errno.
 */
import { readFileSync } from 'node:fs';
import { type ErrorKind, MkimgError } from './errors.js';

/** "cannot read manifest /x.yaml: no such file", "…: it is a folder, not a file", "…: permission denied". */
export function unreadableFileMessage(what: string, path: string, e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  const why =
    code === 'ENOENT' || code === 'ENOTDIR'
      ? 'no such file'
      : code === 'EISDIR'
        ? 'it is a folder, not a file'
        : code === 'EACCES' || code === 'EPERM'
          ? 'permission denied'
          : (code ?? String(e));
  return `cannot read ${what} ${path}: ${why}`;
}

/** Read a file the user named; a failure is a one-line `kind` error (usage unless said otherwise). */
export function readInputFile(path: string, what: string, hint: string, kind: ErrorKind = 'usage'): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new MkimgError(kind, unreadableFileMessage(what, path, e), { hint, cause: e });
  }
}

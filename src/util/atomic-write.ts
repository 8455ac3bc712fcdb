/**
 * The one way mkimg writes a file it must never leave half-written: write a
 * new temporary file beside the target (same directory, so the rename is
 * atomic), rename it into place, and remove the temporary file on any failure.
 */
import { closeSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';

/** A fresh temporary name beside `path`. */
export function tempPathBeside(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** Run `write` on a new temporary file (opened read-write, `mode`) beside `output`, then rename it into place. */
export function writeAtomicallyWith<T>(output: string, write: (fd: number) => T, mode = 0o644): T {
  const tmp = tempPathBeside(output);
  try {
    const fd = openSync(tmp, 'wx+', mode);
    let result: T;
    try {
      result = write(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, output);
    return result;
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** Write `data` to `path` atomically (synchronously). */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): void {
  const tmp = tempPathBeside(path);
  try {
    writeFileSync(tmp, data, { mode, flag: 'wx' });
    renameSync(tmp, path);
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** Write `data` to `path` atomically (asynchronously). */
export async function writeFileAtomicAsync(path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const tmp = tempPathBeside(path);
  try {
    await writeFile(tmp, data, { mode, flag: 'wx' });
    await rename(tmp, path);
  } finally {
    await rm(tmp, { force: true });
  }
}

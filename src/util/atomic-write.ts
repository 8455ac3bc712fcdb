/**
 * The one way mkimg writes a file it must never leave half-written: write a
 * new temporary file beside the target (same directory, so the rename is
 * atomic), rename it into place, and remove the temporary file on any failure.
 */
import { closeSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { removeOnSignal } from './cleanup.js';
import { asEnvironmentError } from './environment.js';

/** A fresh temporary name beside `path`. */
export function tempPathBeside(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/**
 * Run `write` on a new temporary file (opened read-write, `mode`) beside
 * `output`, then rename it into place. The temporary file is removed on a
 * signal too (util/cleanup.ts; its name carries the pid, so a killed run's is
 * collected later), and a full or read-only disk is an environment error
 * naming the output.
 */
export function writeAtomicallyWith<T>(output: string, write: (fd: number) => T, mode = 0o644): T {
  const tmp = tempPathBeside(output);
  const unregister = removeOnSignal(tmp);
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
  } catch (e) {
    throw asEnvironmentError(e, `cannot write ${output}`);
  } finally {
    rmSync(tmp, { force: true });
    unregister();
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

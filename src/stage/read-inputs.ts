/**
 * Hash the files of `files:` inputs: sha256 (the pin) and sha1 (what SPDX
 * requires), in one read each.
 *
 * Big input sets are shared with one worker thread: both threads take the next
 * file from one atomic counter, so the split follows the work actually left.
 * Hashing is CPU work that Node runs on the calling thread; a second thread is
 * the only way to put the second core to it. Results do not depend on the
 * split: each file's digests are a function of its bytes.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MkimgError } from '../util/errors.js';
import { sha256FileSync } from '../util/digest.js';

export interface InputDigests {
  sha256: string;
  sha1: string;
  size: number;
}

/** Below this, a worker thread costs more to start than it saves. */
const PARALLEL_MIN_FILES = 256;
const PARALLEL_MIN_BYTES = 16 << 20;

/** Read one file, hashing it. Errors name the file. */
export function readInput(path: string): InputDigests {
  try {
    const h = sha256FileSync(path);
    return { sha256: h.hex, sha1: h.sha1, size: h.size };
  } catch (e) {
    throw unreadable(path, e);
  }
}

function unreadable(path: string, e: unknown): MkimgError {
  return new MkimgError('input', `files: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? String(e)})`, {
    hint: 'make the file readable by the user running mkimg',
  });
}

/** The work loop both threads run: take the next index, read and hash that file. */
export function drain(paths: readonly string[], counter: Int32Array, out: (i: number, d: InputDigests) => void): void {
  for (;;) {
    const i = Atomics.add(counter, 0, 1);
    if (i >= paths.length) return;
    out(i, readInput(paths[i]));
  }
}

/**
 * Hashes input files, on this thread and, for big sets, on one worker thread
 * too. The worker is started only for a big set, when hashing begins: both
 * threads take files from one counter, so this thread hashes while the worker
 * boots (~75 ms) and the worker joins when ready; a small set (an app edit)
 * starts no thread at all. `close()` always.
 */
export class InputHasher {
  private worker: import('node:worker_threads').Worker | undefined;
  private constructor(private readonly workerUrl: URL | undefined) {}

  static async start(): Promise<InputHasher> {
    const url = new URL('../stage/read-inputs-worker.js', import.meta.url);
    // Under vitest (TypeScript sources, no compiled worker next to this file) everything runs here.
    return new InputHasher(existsSync(fileURLToPath(url)) ? url : undefined);
  }

  private async startWorker(): Promise<import('node:worker_threads').Worker | undefined> {
    if (this.worker || !this.workerUrl) return this.worker;
    const { Worker } = await import('node:worker_threads');
    this.worker = new Worker(this.workerUrl);
    this.worker.on('error', () => {}); // reported by hash(), or moot once closed
    return this.worker;
  }

  /** Digests of each path, in order. `totalBytes` (from the walk's lstat) decides whether the worker takes part. */
  async hash(paths: readonly string[], opts: { totalBytes: number }): Promise<InputDigests[]> {
    const out: InputDigests[] = new Array(paths.length);
    const counter = new Int32Array(new SharedArrayBuffer(4));
    const big = paths.length >= PARALLEL_MIN_FILES && opts.totalBytes >= PARALLEL_MIN_BYTES;
    const worker = big ? await this.startWorker() : undefined;
    if (worker === undefined) {
      drain(paths, counter, (i, d) => (out[i] = d));
      return out;
    }
    const fromWorker = new Promise<void>((resolve, reject) => {
      worker.once(
        'message',
        (m: { results?: Array<[number, InputDigests]>; error?: { message: string; hint?: string } }) => {
          if (m.error) reject(new MkimgError('input', m.error.message, { hint: m.error.hint }));
          else {
            for (const [i, d] of m.results!) out[i] = d;
            resolve();
          }
        },
      );
      worker.once('error', reject);
    });
    worker.postMessage({ paths, counter });
    let mine: unknown;
    try {
      drain(paths, counter, (i, d) => (out[i] = d));
    } catch (e) {
      mine = e;
      Atomics.store(counter, 0, paths.length); // the worker stops after its current file
    }
    try {
      await fromWorker;
    } catch (e) {
      mine ??= e;
    }
    if (mine !== undefined) throw mine;
    return out;
  }

  close(): void {
    void this.worker?.terminate();
  }
}

/** Digests of each path, in order (a hasher started and closed around one call). */
export async function readInputs(paths: readonly string[], opts: { totalBytes: number }): Promise<InputDigests[]> {
  const hasher = await InputHasher.start();
  try {
    return await hasher.hash(paths, opts);
  } finally {
    hasher.close();
  }
}

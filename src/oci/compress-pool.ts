/**
 * Compress layer files on several worker threads. A gzip layer is one
 * deflate stream, so each goes to one thread whole; a zstd layer is a frame
 * per FRAME_BYTES piece, so its pieces are spread over the threads (one big
 * layer uses every core) and written back in order. The blob depends on the
 * layer bytes alone, never on which thread ran what or when it finished.
 * Without a compiled worker next to this module (under vitest, on the .ts
 * sources), or when the layers are small together (starting a thread costs
 * more than they do), everything is compressed on this thread, with the same
 * result.
 */
import { closeSync, existsSync, openSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Worker } from 'node:worker_threads';
import { MkimgError } from '../util/errors.js';
import { BlobWriter, type CompressedFile, compressFile, piecesOf, readPiece } from './compress.js';
import type { Compression } from './model.js';

export interface CompressJob {
  input: string;
  size: number;
  output: string;
  compression: Exclude<Compression, 'none'>;
}

export interface CompressedLayer extends CompressedFile {
  path: string;
}

/** What a compression thread is sent: a whole layer file, or one zstd piece. */
export type ThreadJob = { kind: 'file'; job: CompressJob } | { kind: 'zstd-piece'; piece: Uint8Array };
export type ThreadResult =
  | { ok: true; file?: CompressedFile; compressed?: Uint8Array }
  | { ok: false; message: string };

const WORKER_MIN_BYTES = 4 << 20;

export async function compressLayers(jobs: CompressJob[]): Promise<CompressedLayer[]> {
  const url = new URL('../oci/compress-worker.js', import.meta.url);
  const total = jobs.reduce((n, j) => n + j.size, 0);
  const units = jobs.reduce((n, j) => n + (j.compression === 'zstd' ? piecesOf(j.size).length : 1), 0);
  const threads = Math.min(availableParallelism(), units);
  if (threads <= 1 || total < WORKER_MIN_BYTES || !existsSync(fileURLToPath(url))) {
    const results: CompressedLayer[] = [];
    for (const j of jobs)
      results.push({ path: j.output, ...(await compressFile(j.input, j.size, j.output, j.compression)) });
    return results;
  }
  const { Worker } = await import('node:worker_threads');
  const pool = new ThreadPool(Array.from({ length: threads }, () => new Worker(url)));
  try {
    // gzip layers biggest first, each on a thread of its own; zstd pieces fill the threads meanwhile.
    const order = jobs.map((j, i) => ({ j, i })).sort((a, b) => b.j.size - a.j.size || a.i - b.i);
    const results: CompressedLayer[] = new Array(jobs.length);
    await Promise.all(
      order.map(async ({ j, i }) => {
        const file =
          j.compression === 'zstd' ? await zstdOnPool(pool, j) : (await pool.run({ kind: 'file', job: j })).file!;
        results[i] = { path: j.output, ...file };
      }),
    );
    return results;
  } finally {
    await pool.close();
  }
}

/** One zstd layer through the pool: pieces read in order, at most two per thread in flight, written in order. */
async function zstdOnPool(pool: ThreadPool, j: CompressJob): Promise<CompressedFile> {
  const inFd = openSync(j.input, 'r');
  let writer: BlobWriter | undefined;
  try {
    const w = new BlobWriter(j.output);
    writer = w;
    const inFlight: Promise<ThreadResult & { ok: true }>[] = [];
    for (const p of piecesOf(j.size)) {
      const piece = Buffer.from(readPiece(inFd, Buffer.allocUnsafe(p.length), p.offset, p.length, j.input));
      inFlight.push(pool.run({ kind: 'zstd-piece', piece }));
      if (inFlight.length >= 2 * pool.size) w.add((await inFlight.shift()!).compressed!);
    }
    for (const next of inFlight) w.add((await next).compressed!);
    writer = undefined;
    return w.finish();
  } finally {
    writer?.close();
    closeSync(inFd);
  }
}

/** Worker threads taking jobs first come, first served. */
class ThreadPool {
  private readonly idle: Worker[];
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly workers: Worker[]) {
    this.idle = [...workers];
  }
  get size(): number {
    return this.workers.length;
  }

  async run(job: ThreadJob): Promise<ThreadResult & { ok: true }> {
    while (this.idle.length === 0) await new Promise<void>((r) => this.waiting.push(r));
    const worker = this.idle.pop()!;
    try {
      return await new Promise((resolve, reject) => {
        const onExit = (code: number) =>
          reject(new MkimgError('internal', `the compression thread stopped (exit ${code})`));
        worker.once('message', (m: ThreadResult) => {
          worker.off('exit', onExit);
          if (m.ok) resolve(m);
          else reject(new MkimgError('internal', `compressing a layer: ${m.message}`));
        });
        worker.once('exit', onExit);
        worker.postMessage(job);
      });
    } finally {
      this.idle.push(worker);
      this.waiting.shift()?.();
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

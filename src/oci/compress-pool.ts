/**
 * Compress layer files on several worker threads, piece by piece: every
 * FRAME_BYTES piece of every layer is a job (compressPiece, compress.ts), so
 * one big layer uses every core; this thread reads the pieces in order, hands
 * them out, and writes each layer's compressed pieces back in order
 * (BlobWriter). The blob depends on the layer bytes alone, never on which
 * thread ran which piece or when it finished.
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
import {
  BlobWriter,
  type CompressedFile,
  compressFile,
  GZIP_DICTIONARY_BYTES,
  piecesOf,
  readPiece,
} from './compress.js';
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

/** What a compression thread is sent (one piece of a layer), and sends back. */
export interface ThreadJob {
  piece: Uint8Array;
  compression: Exclude<Compression, 'none'>;
  last: boolean;
  dictionary?: Uint8Array;
}
export type ThreadResult = { ok: true; compressed: Uint8Array } | { ok: false; message: string };

const WORKER_MIN_BYTES = 4 << 20;

export async function compressLayers(jobs: CompressJob[]): Promise<CompressedLayer[]> {
  const url = new URL('../oci/compress-worker.js', import.meta.url);
  const total = jobs.reduce((n, j) => n + j.size, 0);
  const units = jobs.reduce((n, j) => n + piecesOf(j.size).length, 0);
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
    // The layers one after another, each one's pieces on every thread.
    const results: CompressedLayer[] = [];
    for (const j of jobs) results.push({ path: j.output, ...(await compressOnPool(pool, j)) });
    return results;
  } finally {
    await pool.close();
  }
}

/** One layer through the pool: pieces read in order, at most two per thread in flight, written in order. */
async function compressOnPool(pool: ThreadPool, j: CompressJob): Promise<CompressedFile> {
  const inFd = openSync(j.input, 'r');
  let writer: BlobWriter | undefined;
  try {
    const w = new BlobWriter(j.output, j.compression);
    writer = w;
    const inFlight: { piece: Uint8Array; compressed: Promise<ThreadResult & { ok: true }> }[] = [];
    let dictionary: Uint8Array | undefined;
    for (const p of piecesOf(j.size)) {
      const piece = Buffer.from(readPiece(inFd, Buffer.allocUnsafe(p.length), p.offset, p.length, j.input));
      inFlight.push({ piece, compressed: pool.run({ piece, compression: j.compression, last: p.last, dictionary }) });
      dictionary = j.compression === 'gzip' ? piece.subarray(-GZIP_DICTIONARY_BYTES) : undefined;
      if (inFlight.length >= 2 * pool.size) {
        const next = inFlight.shift()!;
        w.add(next.piece, (await next.compressed).compressed);
      }
    }
    for (const next of inFlight) w.add(next.piece, (await next.compressed).compressed);
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

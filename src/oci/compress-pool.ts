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

export interface CompressLayersOptions {
  /** Compression threads (default: one per core); the bytes are the same for any number. */
  threads?: number;
}

export async function compressLayers(
  jobs: CompressJob[],
  opts: CompressLayersOptions = {},
): Promise<CompressedLayer[]> {
  const url = new URL('../oci/compress-worker.js', import.meta.url);
  const total = jobs.reduce((n, j) => n + j.size, 0);
  const units = jobs.reduce((n, j) => n + piecesOf(j.size).length, 0);
  const threads = Math.min(opts.threads ?? availableParallelism(), units);
  if (threads <= 1 || total < WORKER_MIN_BYTES || !existsSync(fileURLToPath(url))) {
    const results: CompressedLayer[] = [];
    for (const j of jobs)
      results.push({ path: j.output, ...(await compressFile(j.input, j.size, j.output, j.compression)) });
    return results;
  }
  const { Worker } = await import('node:worker_threads');
  const pool = new ThreadPool(Array.from({ length: threads }, () => new Worker(url)));
  try {
    return await compressOnPool(pool, jobs);
  } finally {
    await pool.close();
  }
}

/** A piece handed to the pool, waiting to be written back in order. */
interface PieceInFlight {
  writer: BlobWriter;
  output: string;
  piece: Uint8Array;
  last: boolean;
  compressed: Promise<ThreadResult & { ok: true }>;
}

/**
 * The layers through the pool: pieces read in order, layer after layer, at
 * most two per thread in flight, written back in order. The next layer's
 * first pieces are handed out while the previous layer's last ones are still
 * compressing, so no thread idles at a layer's end.
 */
async function compressOnPool(pool: ThreadPool, jobs: CompressJob[]): Promise<CompressedLayer[]> {
  const results: CompressedLayer[] = [];
  const writers: BlobWriter[] = [];
  const inFlight: PieceInFlight[] = [];
  const writeNext = async () => {
    const next = inFlight.shift()!;
    next.writer.add(next.piece, (await next.compressed).compressed);
    if (next.last) results.push({ path: next.output, ...next.writer.finish() });
  };
  try {
    for (const j of jobs) {
      const inFd = openSync(j.input, 'r');
      try {
        const writer = new BlobWriter(j.output, j.compression);
        writers.push(writer);
        let dictionary: Uint8Array | undefined;
        for (const p of piecesOf(j.size)) {
          const piece = Buffer.from(readPiece(inFd, Buffer.allocUnsafe(p.length), p.offset, p.length, j.input));
          const compressed = pool.run({ piece, compression: j.compression, last: p.last, dictionary });
          // Awaited in order by writeNext; a failure while an earlier piece is awaited is not unhandled.
          compressed.catch(() => undefined);
          inFlight.push({ writer, output: j.output, piece, last: p.last, compressed });
          // A copy of its own: a view would send the whole piece's buffer to the thread again.
          dictionary = j.compression === 'gzip' ? new Uint8Array(piece.subarray(-GZIP_DICTIONARY_BYTES)) : undefined;
          if (inFlight.length >= 2 * pool.size) await writeNext();
        }
      } finally {
        closeSync(inFd);
      }
    }
    while (inFlight.length > 0) await writeNext();
    return results;
  } finally {
    for (const w of writers) w.close();
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

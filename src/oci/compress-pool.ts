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
import { setFlagsFromString } from 'node:v8';
import { Worker } from 'node:worker_threads';
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

/** What a compression thread is sent (one piece of a layer), and sends back. */
export interface ThreadJob {
  piece: Uint8Array;
  compression: Exclude<Compression, 'none'>;
}
export type ThreadResult = { ok: true; compressed: Uint8Array } | { ok: false; message: string };

/** Below this many bytes to compress, starting threads costs more than it saves. */
export const WORKER_MIN_BYTES = 4 << 20;

export interface CompressionPoolOptions {
  /** Compression threads (default: one per core); the bytes are the same for any number. */
  threads?: number;
}

/** A piece handed to the threads, waiting to be written back in order. */
interface PieceInFlight {
  layer: LayerInProgress;
  last: boolean;
  compressed: Promise<ThreadResult & { ok: true }>;
}

interface LayerInProgress {
  writer: BlobWriter;
  output: string;
  resolve: (r: CompressedLayer) => void;
  reject: (e: unknown) => void;
}

/**
 * Layers compressed on worker threads as they are handed in: compress()
 * reads a layer's pieces in order and hands them out (at most two per thread
 * in flight, across layers, so the next layer's first pieces start while the
 * previous layer's last ones compress); one loop writes every piece back in
 * order. Started before the layers are written, the threads boot while this
 * thread writes the layer tars.
 * Without a compiled worker next to this module (under vitest, on the .ts
 * sources) or with one thread, layers are compressed on this thread, with
 * the same result.
 */
export class CompressionPool {
  private readonly inFlight: PieceInFlight[] = [];
  private feeding: Promise<void> = Promise.resolve();
  private writing = false;
  private room: (() => void) | undefined;
  private failed: unknown;

  private constructor(private readonly threads: ThreadPool | undefined) {}

  static start(opts: CompressionPoolOptions = {}): CompressionPool {
    const url = new URL('../oci/compress-worker.js', import.meta.url);
    const threads = opts.threads ?? availableParallelism();
    if (threads <= 1 || !existsSync(fileURLToPath(url))) return new CompressionPool(undefined);
    // Each thread compiles the WebAssembly compressors for itself; with V8's baseline compiler
    // (Liftoff) its first pieces run at half speed until the optimizing tier catches up. The
    // optimizing compiler from the start gives the same bytes (integer code) at full speed.
    setFlagsFromString('--no-liftoff');
    return new CompressionPool(new ThreadPool(Array.from({ length: threads }, () => new Worker(url))));
  }

  /** Compress `job.input` into the new file `job.output`; resolves when its blob is written. */
  compress(job: CompressJob): Promise<CompressedLayer> {
    const threads = this.threads;
    if (!threads) {
      const done = this.feeding.then(() => compressFile(job.input, job.size, job.output, job.compression));
      this.feeding = done.then(
        () => undefined,
        () => undefined,
      );
      return done.then((r) => ({ path: job.output, ...r }));
    }
    return new Promise<CompressedLayer>((resolve, reject) => {
      this.feeding = this.feeding.then(() => this.feed(threads, job, resolve, reject));
    });
  }

  async close(): Promise<void> {
    await this.feeding;
    await this.threads?.close();
    for (const p of this.inFlight) p.layer.writer.close();
  }

  /** Hands out `job`'s pieces, waiting for room whenever two per thread are in flight. */
  private async feed(
    threads: ThreadPool,
    job: CompressJob,
    resolve: (r: CompressedLayer) => void,
    reject: (e: unknown) => void,
  ): Promise<void> {
    if (this.failed) return reject(this.failed);
    let inFd: number | undefined;
    let layer: LayerInProgress | undefined;
    try {
      inFd = openSync(job.input, 'r');
      layer = { writer: new BlobWriter(job.output), output: job.output, resolve, reject };
      for (const p of piecesOf(job.size)) {
        while (this.inFlight.length >= 2 * threads.size && !this.failed)
          await new Promise<void>((r) => {
            this.room = r;
          });
        if (this.failed) throw this.failed;
        // A buffer of its own (not a slice of Node.js's pool), moved to the thread, not copied.
        const piece = readPiece(inFd, Buffer.allocUnsafeSlow(p.length), p.offset, p.length, job.input);
        const compressed = threads.run({ piece, compression: job.compression });
        // Awaited in order by the writing loop; a failure while an earlier piece is awaited is not unhandled.
        compressed.catch(() => undefined);
        this.inFlight.push({ layer, last: p.last, compressed });
        if (!this.writing) void this.writeBack();
      }
    } catch (e) {
      layer?.writer.close();
      reject(e);
    } finally {
      if (inFd !== undefined) closeSync(inFd);
    }
  }

  /** Writes compressed pieces back in order while there are any. */
  private async writeBack(): Promise<void> {
    this.writing = true;
    while (this.inFlight.length > 0) {
      const next = this.inFlight[0]!;
      try {
        const { compressed } = await next.compressed;
        if (this.failed) throw this.failed;
        next.layer.writer.add(compressed);
        if (next.last) next.layer.resolve({ path: next.layer.output, ...next.layer.writer.finish() });
      } catch (e) {
        this.failed ??= e;
        next.layer.writer.close();
        next.layer.reject(e);
      }
      this.inFlight.shift();
      const room = this.room;
      this.room = undefined;
      room?.();
    }
    this.writing = false;
  }
}

/** Compress layers (on threads when they are big enough together to pay for starting them). */
export async function compressLayers(
  jobs: CompressJob[],
  opts: CompressionPoolOptions = {},
): Promise<CompressedLayer[]> {
  const total = jobs.reduce((n, j) => n + j.size, 0);
  const units = jobs.reduce((n, j) => n + piecesOf(j.size).length, 0);
  const threads = total < WORKER_MIN_BYTES ? 1 : Math.min(opts.threads ?? availableParallelism(), units);
  const pool = CompressionPool.start({ threads });
  try {
    return await Promise.all(jobs.map((j) => pool.compress(j)));
  } finally {
    await pool.close();
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
        worker.postMessage(job, [job.piece.buffer as ArrayBuffer]);
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

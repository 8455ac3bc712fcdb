/**
 * Compress layer files on several worker threads, piece by piece: every
 * FRAME_BYTES piece of every layer is a job (compressPiece, compress.ts), so
 * one big layer uses every core; this thread hands the pieces out in order
 * (as the layer is written, or read back from its file) and writes each
 * layer's compressed pieces back in order (BlobWriter). The blob depends on
 * the layer bytes alone, never on which thread ran which piece or when it
 * finished.
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

/** A layer being written, whose pieces are compressed as they come (CompressionPool.stream). */
export interface LayerStream {
  /** The next bytes of the layer file, just written to it (copied: the caller may reuse the buffer). */
  write(data: Uint8Array): void;
  /** The layer file is complete: the pieces not handed out yet are read from it. */
  end(): Promise<CompressedLayer>;
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
 * Layers compressed on worker threads as they are handed in: stream() takes a
 * layer's pieces as it is written, compress() reads them from a written file;
 * either way at most two pieces per thread are in flight, across layers (the
 * next layer's first pieces start while the previous layer's last ones
 * compress), and one loop writes every piece back in order. Started before
 * the layers are written, the threads boot while this thread writes them.
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
    return this.stream(job).end();
  }

  /**
   * Compress a layer while it is being written to `job.input`: write() is
   * given each run of bytes as the writer emits them, in order, and hands
   * out every piece it completes at once (synchronously: the writer does
   * not yield), as long as there is room (two per thread in flight); the
   * rest are read back from the file after end(), as compress() does. Memory
   * stays bounded: one piece being filled, and those in flight.
   */
  stream(job: CompressJob): LayerStream {
    const threads = this.threads;
    if (!threads) {
      return {
        write: () => undefined,
        end: () => {
          const done = this.feeding.then(() => compressFile(job.input, job.size, job.output, job.compression));
          this.feeding = done.then(
            () => undefined,
            () => undefined,
          );
          return done.then((r) => ({ path: job.output, ...r }));
        },
      };
    }
    let resolve!: (r: CompressedLayer) => void;
    let reject!: (e: unknown) => void;
    const result = new Promise<CompressedLayer>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // Not awaited when the writer fails before end(): its failure is the one reported.
    result.catch(() => undefined);
    const pieces = piecesOf(job.size);
    let layer: LayerInProgress | undefined;
    let handedOut = 0;
    let filling: Buffer | undefined;
    let filled = 0;
    let streaming = !this.failed;
    return {
      write: (data) => {
        let at = 0;
        while (streaming && at < data.length) {
          const p = pieces[handedOut];
          // No room for the next piece: the rest is read back from the file after end(). (Room cannot
          // grow while the writer runs: it does not yield, so no result comes back meanwhile.)
          if (!p || (filled === 0 && (this.inFlight.length >= 2 * threads.size || this.failed))) {
            streaming = false;
            break;
          }
          filling ??= Buffer.allocUnsafeSlow(p.length);
          const n = Math.min(p.length - filled, data.length - at);
          filling.set(data.subarray(at, at + n), filled);
          filled += n;
          at += n;
          if (filled < p.length) break;
          try {
            layer ??= { writer: new BlobWriter(job.output), output: job.output, resolve, reject };
          } catch (e) {
            streaming = false;
            reject(e);
            break;
          }
          this.handOut(threads, layer, filling, p.last, job.compression);
          handedOut++;
          filling = undefined;
          filled = 0;
        }
      },
      end: () => {
        streaming = false;
        filling = undefined;
        this.feeding = this.feeding.then(() =>
          this.feed(threads, job, pieces.slice(handedOut), layer, resolve, reject),
        );
        return result;
      },
    };
  }

  async close(): Promise<void> {
    await this.feeding;
    await this.threads?.close();
    for (const p of this.inFlight) p.layer.writer.close();
  }

  private handOut(
    threads: ThreadPool,
    layer: LayerInProgress,
    piece: Buffer,
    last: boolean,
    compression: CompressJob['compression'],
  ): void {
    const compressed = threads.run({ piece, compression });
    // Awaited in order by the writing loop; a failure while an earlier piece is awaited is not unhandled.
    compressed.catch(() => undefined);
    this.inFlight.push({ layer, last, compressed });
    if (!this.writing) void this.writeBack();
  }

  /** Hands out `pieces` of `job`, read from its file, waiting for room whenever two per thread are in flight. */
  private async feed(
    threads: ThreadPool,
    job: CompressJob,
    pieces: ReturnType<typeof piecesOf>,
    started: LayerInProgress | undefined,
    resolve: (r: CompressedLayer) => void,
    reject: (e: unknown) => void,
  ): Promise<void> {
    let layer = started;
    if (this.failed) {
      layer?.writer.close();
      return reject(this.failed);
    }
    let inFd: number | undefined;
    try {
      layer ??= { writer: new BlobWriter(job.output), output: job.output, resolve, reject };
      if (pieces.length > 0) inFd = openSync(job.input, 'r');
      for (const p of pieces) {
        while (this.inFlight.length >= 2 * threads.size && !this.failed)
          await new Promise<void>((r) => {
            this.room = r;
          });
        if (this.failed) throw this.failed;
        // A buffer of its own (not a slice of Node.js's pool), moved to the thread, not copied.
        this.handOut(
          threads,
          layer,
          readPiece(inFd!, Buffer.allocUnsafeSlow(p.length), p.offset, p.length, job.input),
          p.last,
          job.compression,
        );
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

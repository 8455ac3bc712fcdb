/**
 * The layer's digests, taken from the bytes as they are written: the sha256 of
 * the whole layer, and the sha256 and sha1 of chosen content ranges (files:
 * inputs that were not hashed before the layer was written: their pins are
 * checked against the sha256, SPDX needs the sha1).
 *
 * Two implementations of one interface:
 * - inline: hashes each chunk on the calling thread as it is written;
 * - threaded: the writer's thread hashes the layer as it writes it; a worker
 *   thread takes the recorded ranges' digests right behind the writer, from
 *   the writer's own buffers (two, shared, used in turn: the writer fills
 *   one while the worker hashes the other), so no byte is copied or read
 *   back for it. That splits the hashing about evenly between the two
 *   threads (the writer also does all the reading and writing). A writer
 *   whose worker never took the job reads back what it wrote from the
 *   output file (the builder's own: created O_EXCL, mode 0644) and goes on
 *   alone.
 *
 * Both take range digests with the same RangeDigester, so they cannot depend
 * on which ran.
 */
import { createHash, type Hash } from 'node:crypto';
import { existsSync, readSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { digestOnce } from '../util/digest.js';
import { MkimgError } from '../util/errors.js';

/** Ranges of layer bytes whose digests are wanted, in increasing, non-overlapping order. */
export interface RangeTable {
  count(): number;
  start(i: number): number;
  end(i: number): number;
}

/**
 * Takes the digests (sha256 and sha1, reported through `done`) of each range
 * of `ranges` from layer bytes given in order as (chunk, offset). Bytes no
 * range needs may be left out (see wantFrom). Ranges may be added while the
 * stream runs, as long as a range is added before any byte of it is given.
 */
export class RangeDigester {
  private cur: { i: number; start: number; end: number; h256: Hash; h1: Hash } | undefined;
  private next = 0;

  constructor(
    private readonly ranges: RangeTable,
    private readonly done: (i: number, sha256: Buffer, sha1: Buffer) => void,
  ) {}

  /** The next chunk, at layer offset `offset`. */
  update(chunk: Buffer, offset: number): void {
    const end = offset + chunk.length;
    let at = offset;
    while (at < end) {
      if (this.cur === undefined) {
        if (this.next >= this.ranges.count()) return;
        const i = this.next;
        const start = this.ranges.start(i);
        if (start >= end) return; // the next range starts in a later chunk
        const stop = this.ranges.end(i);
        this.next++;
        if (start >= at && stop <= end) {
          // Wholly inside this chunk (most files are): one-shot digests, no Hash objects.
          const part = chunk.subarray(start - offset, stop - offset);
          this.done(i, digestOnce('sha256', part), digestOnce('sha1', part));
          at = stop;
          continue;
        }
        this.cur = { i, start, end: stop, h256: createHash('sha256'), h1: createHash('sha1') };
      }
      const c = this.cur;
      if (c.start >= end) return;
      const from = Math.max(at, c.start);
      const to = Math.min(end, c.end);
      if (from < to) {
        const part = chunk.subarray(from - offset, to - offset);
        c.h256.update(part);
        c.h1.update(part);
      }
      at = to;
      if (to === c.end) {
        this.done(c.i, c.h256.digest(), c.h1.digest());
        this.cur = undefined;
      }
    }
  }

  /** The first layer offset at or after `at` whose byte a range needs (Infinity: none registered so far). */
  wantFrom(at: number): number {
    if (this.cur !== undefined) return Math.max(at, this.cur.start);
    if (this.next < this.ranges.count()) return Math.max(at, this.ranges.start(this.next));
    return Infinity;
  }

  /** Every range must have ended. */
  finish(): void {
    if (this.cur !== undefined || this.next < this.ranges.count())
      throw new MkimgError('internal', 'layer digest: a content range did not end inside the layer');
  }
}

/** The bytes of a HashingSink's buffer (one spare byte more is allocated: see HashingSink). */
export const SINK_BUFFER_BYTES = 4 << 20;

/** What HashingSink needs from a layer digester. */
export interface LayerDigester {
  /**
   * Digesters that hash the sink's buffers where they are hand them out: the
   * buffer (SINK_BUFFER_BYTES + 1 bytes) to fill and pass to written() next,
   * once nothing reads it any more. Asked for once, then after each written().
   */
  nextBuffer?(): Buffer;
  /** Ask for the digests of layer bytes [start, end) (end > start); returns its range number. Before any of those bytes is written. */
  addRange(start: number, end: number): number;
  /** `data` was just written at layer offset `offset` (the layer's bytes arrive in order). */
  written(data: Buffer, offset: number): void;
  /** Wait until every byte written so far (`upTo` of them) is hashed: the digests of ranges ending there are then known. */
  sync(upTo: number): void;
  /** sha256 and sha1 (hex) of range i, once the bytes up to its end are hashed. */
  digestsOf(i: number): { sha256: string; sha1: string };
  /** The layer's sha256 (hex), after the last byte (`total` bytes in all) was written. */
  finish(total: number): string;
  /** Stop hashing (the write failed): returns once nothing reads the output any more. */
  abort(): void;
}

/** Everything on this thread: the layer's sha256, a grow-as-needed range table and results. */
export class InlineLayerDigester implements LayerDigester {
  private readonly layer = createHash('sha256');
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];
  private readonly results: { sha256: string; sha1: string }[] = [];
  private readonly digester = new RangeDigester(
    { count: () => this.starts.length, start: (i) => this.starts[i]!, end: (i) => this.ends[i]! },
    (i, sha256, sha1) => (this.results[i] = { sha256: sha256.toString('hex'), sha1: sha1.toString('hex') }),
  );

  addRange(start: number, end: number): number {
    this.starts.push(start);
    this.ends.push(end);
    return this.starts.length - 1;
  }

  written(data: Buffer, offset: number): void {
    this.layer.update(data);
    this.digester.update(data, offset);
  }

  sync(): void {}

  digestsOf(i: number): { sha256: string; sha1: string } {
    const r = this.results[i];
    if (r === undefined) throw new MkimgError('internal', `layer digest: range ${i} asked before its end was written`);
    return r;
  }

  finish(): string {
    this.digester.finish();
    return this.layer.digest('hex');
  }

  abort(): void {}
}

// Shared state of the threaded digester (one SharedArrayBuffer):
// Int32 slots, then BigInt64 slots, then the ranges (2 BigInt64 each), then
// the results (sha256 and sha1: 52 bytes each), an error text.
const I_WAKE = 0; // bumped by the writer after each write (the worker waits on it)
const I_ACK = 1; // bumped by the worker after each chunk hashed (the writer waits on it)
const I_RANGES = 2; // ranges added so far
const I_DONE = 3; // 1: the writer has written everything
const I_STATE = 4; // worker: 0 running, 1 finished, 2 failed, 3 cancelled
const I_CANCEL = 5; // 1: the writer gave up (the worker stops before its next read)
const I_STARTED = 6; // 1: the worker has taken the job
const I_CHUNKS = 7; // buffers written so far (chunk j is in buffer j % 2)
const I_LEN = 8; // the length of the chunk last written from buffer 0, buffer 1
const INTS = 10;
const B_WRITTEN = 0; // layer bytes written
const B_HASHED = 1; // layer bytes hashed
const B_START = 2; // the layer offset of the chunk last written from buffer 0, buffer 1
const BIGS = 4;
const ERROR_BYTES = 512;
const RESULT = 32 + 20;

interface SharedLayout {
  ints: Int32Array;
  bigs: BigInt64Array;
  ranges: BigInt64Array;
  results: Uint8Array;
  error: Uint8Array;
}

function sharedLayout(sab: SharedArrayBuffer, maxRanges: number): SharedLayout {
  let off = 0;
  const ints = new Int32Array(sab, off, INTS);
  off += INTS * 4;
  const bigs = new BigInt64Array(sab, off, BIGS);
  off += BIGS * 8;
  const ranges = new BigInt64Array(sab, off, 2 * maxRanges);
  off += 16 * maxRanges;
  const results = new Uint8Array(sab, off, RESULT * maxRanges);
  off += RESULT * maxRanges;
  const error = new Uint8Array(sab, off, ERROR_BYTES);
  return { ints, bigs, ranges, results, error };
}

function sharedBytes(maxRanges: number): number {
  return INTS * 4 + BIGS * 8 + (16 + RESULT) * maxRanges + ERROR_BYTES;
}

/** A RangeDigester over the shared range table, writing its results into the shared state. */
function sharedRangeDigester(s: SharedLayout): RangeDigester {
  return new RangeDigester(
    {
      count: () => Atomics.load(s.ints, I_RANGES),
      start: (i) => Number(s.ranges[2 * i]),
      end: (i) => Number(s.ranges[2 * i + 1]),
    },
    (i, sha256, sha1) => {
      s.results.set(sha256, RESULT * i);
      s.results.set(sha1, RESULT * i + 32);
    },
  );
}

/**
 * Give `digester` the bytes of layer [from, to) that its ranges
 * need, read back with `read(buf, layerOffset, length)`. Bytes outside every
 * range are skipped, not read: ranges are registered before their bytes are
 * written, so every range starting before `to` is known by then.
 */
function readBack(
  digester: RangeDigester,
  from: number,
  to: number,
  buf: Buffer,
  read: (buf: Buffer, layerOffset: number, length: number) => number,
): void {
  for (let at = from; at < to; ) {
    const want = digester.wantFrom(at);
    if (want >= to) return;
    const n = read(buf, want, Math.min(buf.length, to - want));
    if (n <= 0) throw new Error(`read back ${n} bytes at layer offset ${want} of ${to} written`);
    digester.update(buf.subarray(0, n), want);
    at = want + n;
  }
}

/** The job a worker runs: the shared state and the writer's two buffers. */
export interface LayerHashJob {
  maxRanges: number;
  sab: SharedArrayBuffer;
  buffers: SharedArrayBuffer[];
}

/**
 * The worker's loop (layer-hash-worker.ts): hash each chunk the writer has
 * written, in its buffer, publish progress; until the writer is done.
 * Synchronous: the worker does nothing else.
 */
export function runLayerHashJob(job: LayerHashJob): void {
  const s = sharedLayout(job.sab, job.maxRanges);
  // Taken, unless the writer gave up or took the job over itself (see ThreadedLayerDigester).
  if (Atomics.compareExchange(s.ints, I_STARTED, 0, 1) !== 0) return;
  try {
    const digester = sharedRangeDigester(s);
    const buffers = job.buffers.map((b) => Buffer.from(b));
    let next = 0;
    for (;;) {
      const wake = Atomics.load(s.ints, I_WAKE);
      if (Atomics.load(s.ints, I_CANCEL) === 1) {
        Atomics.store(s.ints, I_STATE, 3);
        break;
      }
      const done = Atomics.load(s.ints, I_DONE) === 1; // read before the count: nothing is written after done
      if (next < Atomics.load(s.ints, I_CHUNKS)) {
        const slot = next % 2;
        const start = Number(Atomics.load(s.bigs, B_START + slot));
        const len = Atomics.load(s.ints, I_LEN + slot);
        digester.update(buffers[slot]!.subarray(0, len), start);
        next++;
        Atomics.store(s.bigs, B_HASHED, BigInt(start + len));
        Atomics.add(s.ints, I_ACK, 1);
        Atomics.notify(s.ints, I_ACK);
        continue;
      }
      if (done) break;
      Atomics.wait(s.ints, I_WAKE, wake);
    }
    if (Atomics.load(s.ints, I_STATE) !== 3) {
      digester.finish();
      Atomics.store(s.ints, I_STATE, 1);
    }
  } catch (e) {
    const text = Buffer.from(String((e as Error)?.message ?? e)).subarray(0, ERROR_BYTES);
    s.error.set(text);
    Atomics.store(s.ints, I_STATE, 2);
  }
  Atomics.add(s.ints, I_ACK, 1);
  Atomics.notify(s.ints, I_ACK);
}

/**
 * The writer's side of a job run by a LayerHashThread. The writer never waits
 * for a worker that has not taken the job (still booting, or gone): at the
 * first wait it takes the job over (the worker then leaves it alone), reads
 * back what it has written so far, and hashes the rest inline.
 */
class ThreadedLayerDigester implements LayerDigester {
  private nRanges = 0;
  private inline: RangeDigester | undefined;
  /** Buffers handed out so far; the layer offset each buffer's last chunk ends at (it is free once hashed that far). */
  private handed = 0;
  private chunks = 0;
  private readonly freeAt = [0, 0];
  /** The shared results as one Buffer (thousands of ranges are read: no view made for each). */
  private readonly results: Buffer;
  /** The layer's sha256 is taken here, on the writer's thread: that balances the two threads' work. */
  private readonly layer = createHash('sha256');

  constructor(
    private readonly s: SharedLayout,
    private readonly maxRanges: number,
    private readonly fd: number,
    private readonly position: number,
    private readonly buffers: Buffer[],
  ) {
    this.results = Buffer.from(s.results.buffer, s.results.byteOffset, s.results.byteLength);
  }

  addRange(start: number, end: number): number {
    const i = this.nRanges++;
    if (i >= this.maxRanges)
      throw new MkimgError('internal', `layer digest: more than the ${this.maxRanges} ranges planned`);
    this.s.ranges[2 * i] = BigInt(start);
    this.s.ranges[2 * i + 1] = BigInt(end);
    Atomics.store(this.s.ints, I_RANGES, i + 1);
    return i;
  }

  nextBuffer(): Buffer {
    const slot = this.handed++ % 2;
    const free = this.freeAt[slot]!;
    // Still being hashed: wait for the worker (or take the job over, if it never took it).
    if (!this.inline && Number(Atomics.load(this.s.bigs, B_HASHED)) < free) this.sync(free);
    return this.buffers[slot]!;
  }

  written(data: Buffer, offset: number): void {
    this.layer.update(data);
    const slot = this.chunks++ % 2;
    if (data.buffer !== this.buffers[slot]!.buffer || data.byteOffset !== this.buffers[slot]!.byteOffset)
      throw new MkimgError('internal', 'layer digest: bytes written from another buffer than the one handed out');
    this.freeAt[slot] = offset + data.length;
    if (this.inline) {
      this.inline.update(data, offset);
      return;
    }
    Atomics.store(this.s.bigs, B_START + slot, BigInt(offset));
    Atomics.store(this.s.ints, I_LEN + slot, data.length);
    Atomics.store(this.s.bigs, B_WRITTEN, BigInt(offset + data.length));
    Atomics.store(this.s.ints, I_CHUNKS, this.chunks);
    Atomics.add(this.s.ints, I_WAKE, 1);
    Atomics.notify(this.s.ints, I_WAKE);
  }

  sync(upTo: number): void {
    if (this.tookOver()) return;
    for (;;) {
      const ack = Atomics.load(this.s.ints, I_ACK);
      this.checkFailed();
      if (Number(Atomics.load(this.s.bigs, B_HASHED)) >= upTo) return;
      Atomics.wait(this.s.ints, I_ACK, ack);
    }
  }

  /** True when this thread hashes (it took the job over now, or before). */
  private tookOver(): boolean {
    if (this.inline) return true;
    if (Atomics.compareExchange(this.s.ints, I_STARTED, 0, 2) !== 0) return false;
    const inline = sharedRangeDigester(this.s);
    const written = Number(Atomics.load(this.s.bigs, B_WRITTEN));
    try {
      readBack(inline, 0, written, Buffer.allocUnsafe(Math.max(1, Math.min(4 << 20, written))), (b, off, len) =>
        readSync(this.fd, b, 0, len, this.position + off),
      );
    } catch (e) {
      throw new MkimgError('internal', `layer digest: cannot read the layer back: ${(e as Error).message}`);
    }
    this.inline = inline;
    return true;
  }

  digestsOf(i: number): { sha256: string; sha1: string } {
    const r = this.results;
    return {
      sha256: r.toString('hex', RESULT * i, RESULT * i + 32),
      sha1: r.toString('hex', RESULT * i + 32, RESULT * (i + 1)),
    };
  }

  finish(total: number): string {
    if (this.tookOver()) {
      this.inline!.finish();
      return this.layer.digest('hex');
    }
    Atomics.store(this.s.ints, I_DONE, 1);
    Atomics.add(this.s.ints, I_WAKE, 1);
    Atomics.notify(this.s.ints, I_WAKE);
    for (;;) {
      const ack = Atomics.load(this.s.ints, I_ACK);
      this.checkFailed();
      if (Atomics.load(this.s.ints, I_STATE) === 1) break;
      Atomics.wait(this.s.ints, I_ACK, ack);
    }
    const hashed = Number(Atomics.load(this.s.bigs, B_HASHED));
    if (hashed !== total) throw new MkimgError('internal', `layer digest: ${hashed} bytes hashed, ${total} written`);
    return this.layer.digest('hex');
  }

  abort(): void {
    if (this.inline) return;
    Atomics.store(this.s.ints, I_CANCEL, 1);
    // A worker that has not taken the job yet never will.
    if (Atomics.compareExchange(this.s.ints, I_STARTED, 0, 2) === 0) return;
    Atomics.add(this.s.ints, I_WAKE, 1);
    Atomics.notify(this.s.ints, I_WAKE);
    // Otherwise wait until it has stopped (it checks the flag before each read).
    for (;;) {
      const ack = Atomics.load(this.s.ints, I_ACK);
      if (Atomics.load(this.s.ints, I_STATE) !== 0) return;
      Atomics.wait(this.s.ints, I_ACK, ack, 1000);
    }
  }

  private checkFailed(): void {
    if (Atomics.load(this.s.ints, I_STATE) !== 2) return;
    const raw = Buffer.from(this.s.error);
    const end = raw.indexOf(0);
    throw new MkimgError('internal', `layer digest thread: ${raw.subarray(0, end < 0 ? raw.length : end).toString()}`);
  }
}

/**
 * A worker thread for layer digests, started early (it takes tens of
 * milliseconds to boot, which then overlap staging) and used by at most one
 * layer. `start()` returns undefined when there is no compiled worker next to
 * this module (under vitest, on the .ts sources): layers are then hashed inline.
 */
export class LayerHashThread {
  private used = false;
  /** Settles once the worker listens for its job (nobody needs to wait for it: a job posted earlier waits in its queue). */
  readonly ready: Promise<void>;

  private constructor(private readonly worker: import('node:worker_threads').Worker) {
    this.ready = new Promise((resolve) => {
      worker.once('message', () => resolve());
      worker.once('exit', () => resolve());
    });
  }

  static async start(): Promise<LayerHashThread | undefined> {
    const url = new URL('../image/layer-hash-worker.js', import.meta.url);
    if (!existsSync(fileURLToPath(url))) return undefined;
    const { Worker } = await import('node:worker_threads');
    const worker = new Worker(url);
    worker.on('error', () => {}); // a failed job is reported through the shared state
    worker.unref();
    return new LayerHashThread(worker);
  }

  /**
   * A digester whose range hashing runs on this thread's worker, in the sink's
   * buffers it hands out; `fd` at `position` is where the layer is written (read
   * back only by a writer that takes the job over).
   */
  digester(fd: number, position: number, maxRanges: number): LayerDigester {
    if (this.used) throw new MkimgError('internal', 'a layer hash thread hashes one layer');
    this.used = true;
    const sab = new SharedArrayBuffer(sharedBytes(maxRanges));
    const buffers = [0, 1].map(() => new SharedArrayBuffer(SINK_BUFFER_BYTES + 1));
    const job: LayerHashJob = { maxRanges, sab, buffers };
    this.worker.postMessage(job);
    return new ThreadedLayerDigester(
      sharedLayout(sab, maxRanges),
      maxRanges,
      fd,
      position,
      buffers.map((b) => Buffer.from(b)),
    );
  }

  close(): void {
    void this.worker.terminate();
  }
}

/**
 * Layer compression, deterministic by construction: the compressed bytes are
 * a function of the layer bytes and the pinned versions of two compressors
 * that do not come from Node.js (whose bundled zlib changes between releases
 * and CPUs):
 * - gzip: one gzip member per FRAME_BYTES piece (header mtime 0, no file
 *   name, OS byte 3), deflated by libdeflate (C compiled to WebAssembly,
 *   version pinned in package-lock) at GZIP_LEVEL; pieces compress on
 *   several threads with the same result;
 * - zstd: @bokuweb/zstd-wasm (zstd compiled to WebAssembly, pinned), level
 *   ZSTD_LEVEL, one frame per FRAME_BYTES of input (frames concatenate into
 *   one stream), so memory stays bounded for a layer of any size.
 * Input is read in fixed FRAME_BYTES pieces at fixed offsets, so the chunking
 * (which the gzip members and zstd frames follow) is a function of the layer
 * alone.
 *
 * Reading (LayerDecoder): gzip through fflate, zstd through fzstd, both
 * synchronous push decoders with bounded memory; a stream that decompresses
 * past MAX_RATIO × its compressed size + MAX_SLACK bytes is refused as a bomb.
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { Gunzip } from 'fflate';
import { Decompress as ZstdDecompress } from 'fzstd';
import { MkimgError } from '../util/errors.js';
import type { Compression } from './model.js';

/** Input piece size: the unit of reading, of gzip members, and of zstd frames. */
export const FRAME_BYTES = 8 << 20;
export const GZIP_LEVEL = 6;
/**
 * Bumped whenever a compressor's bytes for the same layer change (gzip 4: a libdeflate member per
 * piece; 3: fflate pieces in one member; 2 was a development format). Cached blobs are kept under
 * it, so a blob of an older format is never reused where a fresh compression would now give other
 * bytes.
 */
export const BLOB_FORMAT: Record<Exclude<Compression, 'none'>, number> = { gzip: 4, zstd: 1 };
export const ZSTD_LEVEL = 9;

/** Decompressed bytes allowed per compressed byte (deflate cannot exceed 1032:1; zstd can, a layer does not need to). */
export const MAX_RATIO = 1100;
/** Compressed bytes kept behind the latest chunk to find a gzip trailer (a member header can be longer only with a huge name or extra field). */
const RECENT_BYTES = 64 << 10;
/** Plus this many bytes, whatever the compressed size. */
export const MAX_SLACK = 64 << 20;

export interface CompressedFile {
  /** sha256 hex of the compressed bytes (the blob digest). */
  sha256: string;
  size: number;
}

type ZstdModule = { init: () => Promise<void>; compress: (buf: Uint8Array, level?: number) => Uint8Array };
/**
 * The zstd encoder, loaded once per thread (WebAssembly instantiation is asynchronous). Kept on
 * the thread's global object, not in this module: @bokuweb/zstd-wasm is one shared module whose
 * init() instantiates it again, and a second init (a second copy of this module in one thread,
 * as under the tests) leaves its memory views and allocator apart: it then writes corrupt frames.
 */
const ZSTD_KEY = Symbol.for('mkimg.zstd-encoder');
export function loadZstd(): Promise<ZstdModule> {
  const g = globalThis as { [ZSTD_KEY]?: Promise<ZstdModule> };
  g[ZSTD_KEY] ??= (async () => {
    const m = (await import('@bokuweb/zstd-wasm')) as unknown as ZstdModule & { default?: ZstdModule };
    const mod = typeof m.init === 'function' ? m : m.default!;
    await mod.init();
    return mod;
  })();
  return g[ZSTD_KEY];
}

type DeflateModule = { deflate: (input: Uint8Array, level?: number) => Uint8Array };
let libdeflate: Promise<DeflateModule> | undefined;
/** The deflate encoder, loaded once per thread. */
function loadDeflate(): Promise<DeflateModule> {
  libdeflate ??= import('libdeflate') as Promise<DeflateModule>;
  return libdeflate;
}

/** gzip member header: deflate, no flags, mtime 0, XFL 0, OS 3 (Unix). */
const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);

/**
 * One FRAME_BYTES piece of a layer, compressed on its own, so that pieces can
 * be compressed on several threads and the blob is the same whichever thread
 * did which. zstd: one frame. gzip: one gzip member (RFC 1952 lets a file be
 * several; every gzip reader runtimes use reads them all), its deflate data
 * from libdeflate at GZIP_LEVEL, its trailer the piece's CRC-32 and size. The
 * blob is the pieces one after another (BlobWriter).
 */
export async function compressPiece(piece: Uint8Array, compression: Exclude<Compression, 'none'>): Promise<Uint8Array> {
  if (compression === 'zstd') return (await loadZstd()).compress(piece, ZSTD_LEVEL);
  const raw = (await loadDeflate()).deflate(piece, GZIP_LEVEL);
  const member = Buffer.allocUnsafeSlow(GZIP_HEADER.length + raw.length + 8);
  GZIP_HEADER.copy(member, 0);
  member.set(raw, GZIP_HEADER.length);
  member.writeUInt32LE(crc32(piece) >>> 0, GZIP_HEADER.length + raw.length);
  member.writeUInt32LE(piece.length, GZIP_HEADER.length + raw.length + 4);
  return member;
}

/** The pieces of a `size`-byte layer: their offsets and lengths (one empty piece for an empty layer). */
export function piecesOf(size: number): { offset: number; length: number; last: boolean }[] {
  const out: { offset: number; length: number; last: boolean }[] = [];
  for (let at = 0; at < size || out.length === 0; at += FRAME_BYTES) {
    const length = Math.min(FRAME_BYTES, size - at);
    out.push({ offset: at, length, last: at + length >= size });
  }
  return out;
}

/** Writes a compressed blob from its compressed pieces, in order, and takes the sha256 of every byte written. */
export class BlobWriter {
  private readonly fd: number;
  private readonly hash = createHash('sha256');
  private written = 0;
  private closed = false;

  constructor(output: string) {
    this.fd = openSync(output, 'wx', 0o644);
  }

  /** The next piece, as compressPiece made it. */
  add(compressed: Uint8Array): void {
    this.hash.update(compressed);
    let off = 0;
    while (off < compressed.length)
      off += writeSync(this.fd, compressed, off, compressed.length - off, this.written + off);
    this.written += compressed.length;
  }

  finish(): CompressedFile {
    this.close();
    return { sha256: this.hash.digest('hex'), size: this.written };
  }

  /** Closes the file; again is a no-op (a failed pool closes every writer it opened). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }
}

/** Read exactly `length` bytes of `fd` at `offset` into `buf`. */
export function readPiece(fd: number, buf: Buffer, offset: number, length: number, what: string): Buffer {
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, offset + got);
    if (n === 0) throw new MkimgError('internal', `${what}: layer ends at byte ${offset + got}, expected more`);
    got += n;
  }
  return buf.subarray(0, length);
}

/**
 * Compress the file `input` (`size` bytes) into the new file `output` on
 * this thread, piece by piece (compressPiece): the same bytes as the thread
 * pool's. Memory: one piece and its compressed bytes.
 */
export async function compressFile(
  input: string,
  size: number,
  output: string,
  compression: Exclude<Compression, 'none'>,
): Promise<CompressedFile> {
  const inFd = openSync(input, 'r');
  let writer: BlobWriter | undefined;
  try {
    const w = new BlobWriter(output);
    writer = w;
    const buf = Buffer.allocUnsafe(FRAME_BYTES);
    for (const p of piecesOf(size))
      w.add(await compressPiece(readPiece(inFd, buf, p.offset, p.length, input), compression));
    writer = undefined;
    return w.finish();
  } finally {
    writer?.close();
    closeSync(inFd);
  }
}

/**
 * A push decoder for a compressed layer blob: decompressed bytes go to
 * `onData`; throws MkimgError(kind) for corrupt or truncated data or a bomb
 * (more than MAX_RATIO × compressedSize + MAX_SLACK bytes). `what` names the
 * layer in messages.
 */
export class LayerDecoder {
  private out = 0;
  private readonly limit: number;
  private readonly push: (chunk: Uint8Array, final: boolean) => void;
  private done = false;
  private crc = 0;
  private memberOut = 0;
  /** For the trailers: the chunk being pushed, from compressed offset `curStart`, and up to RECENT_BYTES before it. */
  private cur: Uint8Array = new Uint8Array(0);
  private curStart = 0;
  private behind = Buffer.alloc(0);

  constructor(
    compression: Exclude<Compression, 'none'>,
    compressedSize: number,
    private readonly what: string,
    private readonly onData: (chunk: Uint8Array) => void,
    private readonly kind: 'integrity' | 'registry' = 'integrity',
  ) {
    this.limit = compressedSize * MAX_RATIO + MAX_SLACK;
    const ondata = (chunk: Uint8Array, final?: boolean) => {
      this.out += chunk.length;
      if (this.out > this.limit) {
        throw new MkimgError(
          this.kind,
          `${what}: decompresses to more than ${this.limit} bytes (${MAX_RATIO}× its ${compressedSize} compressed bytes + ${MAX_SLACK >> 20} MiB): a compression bomb, refused`,
          {
            hint: 'this is not a layer mkimg reads; fetch the image from a trusted source',
          },
        );
      }
      if (chunk.length) this.onData(chunk);
      if (final) this.done = true;
    };
    if (compression === 'gzip') {
      // fflate does not check gzip trailers: each member ends in the CRC-32
      // and the size (mod 2^32) of its decompressed bytes. A member's output
      // is all out before fflate reports where the next one starts.
      const d = new Gunzip((chunk, final) => {
        if (chunk.length) {
          this.crc = crc32(chunk, this.crc);
          this.memberOut += chunk.length;
        }
        ondata(chunk, final);
      });
      d.onmember = (offset) => {
        this.checkTrailer(offset);
        this.crc = 0;
        this.memberOut = 0;
      };
      this.push = (c, f) => {
        this.behind =
          this.cur.length >= RECENT_BYTES
            ? Buffer.from(this.cur.subarray(-RECENT_BYTES))
            : Buffer.concat([this.behind, this.cur]).subarray(-RECENT_BYTES);
        this.curStart += this.cur.length;
        this.cur = c;
        d.push(c, f);
        if (f && this.done) this.checkTrailer(this.curStart + c.length);
      };
    } else {
      const d = new ZstdDecompress(ondata);
      this.push = (c, f) => d.push(c, f);
    }
  }

  /** The 8 bytes before compressed offset `end` must be the trailer of the member just decoded. */
  private checkTrailer(end: number): void {
    const t = Buffer.alloc(8);
    for (let i = 0; i < 8; i++) {
      const off = end - 8 + i;
      const b =
        off >= this.curStart ? this.cur[off - this.curStart] : this.behind[this.behind.length - (this.curStart - off)];
      if (b === undefined)
        this.fail('a gzip member ends where its trailer cannot be read back (a header over 64 KiB?)');
      t[i] = b;
    }
    if (t.readUInt32LE(0) !== this.crc >>> 0 || t.readUInt32LE(4) !== this.memberOut % 2 ** 32)
      this.fail('a gzip trailer (CRC-32, size) does not match the data: truncated or corrupt');
  }

  write(chunk: Uint8Array): void {
    this.guard(() => this.push(chunk, false));
  }

  /** The end of the compressed bytes: a stream that has not ended there is truncated. Returns the decompressed size. */
  end(): number {
    this.guard(() => this.push(new Uint8Array(0), true));
    if (!this.done) this.fail('the compressed stream is truncated');
    return this.out;
  }

  private guard(f: () => void): void {
    try {
      f();
    } catch (e) {
      if (e instanceof MkimgError) throw e;
      this.fail(`not valid compressed data (${(e as Error).message})`);
    }
  }

  private fail(msg: string): never {
    throw new MkimgError(this.kind, `${this.what}: ${msg}`, {
      hint: 'the image was modified or damaged; fetch or build it again',
    });
  }
}

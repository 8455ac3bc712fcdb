/**
 * Layer compression, deterministic by construction: the compressed bytes are
 * a function of the layer bytes and the pinned versions of two compressors
 * that do not come from Node.js (whose bundled zlib changes between releases
 * and CPUs):
 * - gzip: fflate (pure JavaScript, version pinned in package-lock), level 6,
 *   header mtime 0, no file name, OS byte 3, each FRAME_BYTES piece deflated
 *   on its own against the previous piece's last 32 KiB (compressPiece), so
 *   pieces compress on several threads with the same result;
 * - zstd: @bokuweb/zstd-wasm (zstd compiled to WebAssembly, pinned), level
 *   ZSTD_LEVEL, one frame per FRAME_BYTES of input (frames concatenate into
 *   one stream), so memory stays bounded for a layer of any size.
 * Input is read in fixed FRAME_BYTES pieces at fixed offsets, so the chunking
 * (which the gzip stream's block boundaries follow) is a function of the
 * layer alone.
 *
 * Reading (decompressLayer): gzip through fflate, zstd through fzstd, both
 * synchronous push decoders with bounded memory; a stream that decompresses
 * past MAX_RATIO × its compressed size + MAX_SLACK bytes is refused as a bomb.
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { Deflate, Gunzip } from 'fflate';
import { Decompress as ZstdDecompress } from 'fzstd';
import { MkimgError } from '../util/errors.js';
import type { Compression } from './model.js';

/** Input piece size: the unit of reading, of gzip pushes, and of zstd frames. */
export const FRAME_BYTES = 8 << 20;
export const GZIP_LEVEL = 6;
/**
 * Bumped whenever a compressor's bytes for the same layer change (gzip 3: pieces deflated on
 * their own; 2 was a development format). Cached blobs are kept under it, so a blob of an older
 * format is never reused where a fresh compression would now give other bytes.
 */
export const BLOB_FORMAT: Record<Exclude<Compression, 'none'>, number> = { gzip: 3, zstd: 1 };
export const ZSTD_LEVEL = 9;

/** Decompressed bytes allowed per compressed byte (deflate cannot exceed 1032:1; zstd can, a layer does not need to). */
export const MAX_RATIO = 1100;
/** Plus this many bytes, whatever the compressed size. */
export const MAX_SLACK = 64 << 20;

export interface CompressedFile {
  /** sha256 hex of the compressed bytes (the blob digest). */
  sha256: string;
  size: number;
}

type ZstdModule = { init: () => Promise<void>; compress: (buf: Uint8Array, level?: number) => Uint8Array };
let zstd: Promise<ZstdModule> | undefined;
/** The zstd encoder, loaded once per thread (WebAssembly instantiation is asynchronous). */
export function loadZstd(): Promise<ZstdModule> {
  zstd ??= (async () => {
    const m = (await import('@bokuweb/zstd-wasm')) as unknown as ZstdModule & { default?: ZstdModule };
    const mod = typeof m.init === 'function' ? m : m.default!;
    await mod.init();
    return mod;
  })();
  return zstd;
}

/** Bytes of the previous piece a gzip piece is deflated against (deflate's whole window). */
export const GZIP_DICTIONARY_BYTES = 32 << 10;
/** gzip header: deflate, no flags, mtime 0, XFL 0 (level 6), OS 3 (Unix), as fflate writes it. */
const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);

/**
 * One FRAME_BYTES piece of a layer, compressed on its own, so that pieces can
 * be compressed on several threads and the blob is the same whichever thread
 * did which. zstd: one frame. gzip: raw deflate with the previous piece's
 * last 32 KiB as preset dictionary (what deflate's window holds there, so the
 * size barely changes), ended on a byte boundary by an empty stored block
 * unless it is the last, whose final block ends the stream; the pieces go
 * between one gzip header and one trailer (BlobWriter). A layer of one piece
 * is exactly fflate's streaming gzip.
 */
export async function compressPiece(
  piece: Uint8Array,
  compression: Exclude<Compression, 'none'>,
  opts: { last: boolean; dictionary?: Uint8Array },
): Promise<Uint8Array> {
  if (compression === 'zstd') return (await loadZstd()).compress(piece, ZSTD_LEVEL);
  const out: Uint8Array[] = [];
  const d = new Deflate(
    { level: GZIP_LEVEL, ...(opts.dictionary?.length ? { dictionary: opts.dictionary } : {}) },
    (chunk) => out.push(chunk),
  );
  if (opts.last) d.push(piece, true);
  else {
    d.push(piece, false);
    d.flush(false);
    out.push(syncTail(d));
  }
  return out.length === 1 ? out[0]! : Buffer.concat(out);
}

/**
 * The end of a non-final piece: fflate holds back the last, partly filled
 * byte (its state `s.r`: bits used | byte << 3); it is written here, followed
 * by an empty non-final stored block (3 zero header bits, padding to the
 * byte, LEN 0000, NLEN ffff), so the next piece starts on a byte boundary.
 * (fflate 0.8.3's own flush(true) misplaces that block when the held byte is
 * not zero; the version is pinned, and test/oci/compress-threads.test.ts
 * decodes a many-piece layer with three decoders.)
 */
function syncTail(d: Deflate): Uint8Array {
  const r = (d as unknown as { s: { r?: number } }).s.r ?? 0;
  const bits = r & 7;
  const held = r >> 3;
  return Uint8Array.from(bits + 3 > 8 ? [held, 0, 0, 0, 0xff, 0xff] : [held, 0, 0, 0xff, 0xff]);
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

/**
 * Writes a compressed blob from its compressed pieces, in order: for gzip,
 * one header before them and the trailer after (CRC-32 and size of the
 * uncompressed pieces); the sha256 of every byte written.
 */
export class BlobWriter {
  private readonly fd: number;
  private readonly hash = createHash('sha256');
  private written = 0;
  private crc = 0;
  private inputBytes = 0;
  private closed = false;

  constructor(
    output: string,
    private readonly compression: Exclude<Compression, 'none'>,
  ) {
    this.fd = openSync(output, 'wx', 0o644);
    if (compression === 'gzip') this.emit(GZIP_HEADER);
  }

  /** The next piece: its uncompressed bytes (for the trailer) and what compressPiece made of them. */
  add(piece: Uint8Array, compressed: Uint8Array): void {
    if (this.compression === 'gzip') {
      this.crc = crc32(piece, this.crc);
      this.inputBytes += piece.length;
    }
    this.emit(compressed);
  }

  finish(): CompressedFile {
    if (this.compression === 'gzip') {
      const t = Buffer.alloc(8);
      t.writeUInt32LE(this.crc >>> 0, 0);
      t.writeUInt32LE(this.inputBytes % 2 ** 32, 4);
      this.emit(t);
    }
    this.close();
    return { sha256: this.hash.digest('hex'), size: this.written };
  }

  /** Closes the file; again is a no-op (a failed pool closes every writer it opened). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }

  private emit(data: Uint8Array): void {
    this.hash.update(data);
    let off = 0;
    while (off < data.length) off += writeSync(this.fd, data, off, data.length - off, this.written + off);
    this.written += data.length;
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
 * pool's. Memory: one piece, the previous one's tail and one compressed piece.
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
    const w = new BlobWriter(output, compression);
    writer = w;
    const buf = Buffer.allocUnsafe(FRAME_BYTES);
    let dictionary: Uint8Array | undefined;
    for (const p of piecesOf(size)) {
      const piece = readPiece(inFd, buf, p.offset, p.length, input);
      w.add(piece, await compressPiece(piece, compression, { last: p.last, dictionary }));
      dictionary = compression === 'gzip' ? Buffer.from(piece.subarray(-GZIP_DICTIONARY_BYTES)) : undefined;
    }
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
  private tail = Buffer.alloc(0);

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
      // fflate does not check the gzip trailer: the last 8 bytes are the
      // CRC-32 and the size (mod 2^32) of the decompressed bytes.
      const d = new Gunzip((chunk, final) => {
        if (chunk.length) this.crc = crc32(chunk, this.crc);
        ondata(chunk, final);
      });
      this.push = (c, f) => {
        this.keepTail(c);
        d.push(c, f);
        if (f && this.done) {
          const t = this.tail;
          if (t.length < 8 || t.readUInt32LE(0) !== this.crc >>> 0 || t.readUInt32LE(4) !== this.out % 2 ** 32)
            this.fail('the gzip trailer (CRC-32, size) does not match the data: truncated or corrupt');
        }
      };
    } else {
      const d = new ZstdDecompress(ondata);
      this.push = (c, f) => d.push(c, f);
    }
  }

  private keepTail(c: Uint8Array): void {
    if (c.length >= 8) this.tail = Buffer.from(c.subarray(c.length - 8));
    else if (c.length > 0) this.tail = Buffer.concat([this.tail, c]).subarray(-8);
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

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
 * Reading is decompress.ts (LayerDecoder): a build, which only writes
 * layers, does not load the decoders.
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { MkimgError } from '../util/errors.js';
import { compressPiece, FRAME_BYTES, piecesOf } from './compress-piece.js';
import type { Compression } from './model.js';

export {
  BLOB_FORMAT,
  compressPiece,
  FRAME_BYTES,
  GZIP_LEVEL,
  loadZstd,
  piecesOf,
  ZSTD_LEVEL,
} from './compress-piece.js';

export interface CompressedFile {
  /** sha256 hex of the compressed bytes (the blob digest). */
  sha256: string;
  size: number;
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

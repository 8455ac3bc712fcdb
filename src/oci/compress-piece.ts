/**
 * The layer encoders, alone: what a compression thread loads (compress-worker.ts), without the
 * decoders and the file handling of compress.ts. The bytes are a function of the piece and the
 * pinned compressors (see compress.ts).
 */
import { crc32 } from 'node:zlib';
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

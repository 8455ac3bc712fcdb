/**
 * Reading a compressed layer blob (LayerDecoder): gzip through fflate, zstd
 * through fzstd, both synchronous push decoders with bounded memory; a stream
 * that decompresses past MAX_RATIO × its compressed size + MAX_SLACK bytes is
 * refused as a bomb. Apart from compress.ts, which writes blobs: a build does
 * not load the decoders (their tables cost start-up time).
 */
import { crc32 } from 'node:zlib';
import { Gunzip } from 'fflate';
import { Decompress as ZstdDecompress } from 'fzstd';
import { MkimgError } from '../util/errors.js';
import type { Compression } from './model.js';

/** Decompressed bytes allowed per compressed byte (deflate cannot exceed 1032:1; zstd can, a layer does not need to). */
export const MAX_RATIO = 1100;
/** Compressed bytes kept behind the latest chunk to find a gzip trailer (a member header can be longer only with a huge name or extra field). */
const RECENT_BYTES = 64 << 10;
/** Plus this many bytes, whatever the compressed size. */
export const MAX_SLACK = 64 << 20;

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

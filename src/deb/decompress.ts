/**
 * Decompression of .deb members by their name's suffix: none, .gz (node:zlib),
 * .xz (@napi-rs/lzma, whole member in memory: its API takes buffers), .zst
 * (fzstd, streamed). Corrupt input is an 'input' error naming the member.
 * The xz and zstd libraries are loaded on first use (a build of files: inputs
 * alone, or of gzip-only packages, does not load them).
 */
import { createGunzip } from 'node:zlib';
import { MkimgError } from '../util/errors.js';

export type Compression = 'none' | 'gzip' | 'xz' | 'zstd';

export function compressionOf(memberName: string, base: string): Compression | null {
  if (memberName === base) return 'none';
  if (memberName === base + '.gz') return 'gzip';
  if (memberName === base + '.xz') return 'xz';
  if (memberName === base + '.zst') return 'zstd';
  return null;
}

function corrupt(label: string, kind: Compression, e: unknown): MkimgError {
  const why = e instanceof Error ? e.message : String(e);
  return new MkimgError('input', `${label}: corrupt ${kind} data: ${why}`, {
    hint: 'the package is damaged; delete it from the cache and fetch it again',
    cause: e,
  });
}

export async function* decompress(input: AsyncIterable<Buffer>, kind: Compression, label: string): AsyncGenerator<Buffer> {
  switch (kind) {
    case 'none':
      yield* input;
      return;
    case 'gzip': {
      // Driven chunk by chunk from this generator (no read-ahead stream pulling
      // the input concurrently), so stopping early leaves the reader in a known place.
      const gz = createGunzip();
      const out: Buffer[] = [];
      let err: unknown = null;
      let ended = false;
      gz.on('data', (c: Buffer) => out.push(c));
      let wake: (() => void) | null = null;
      gz.on('error', (e) => {
        err = e;
        wake?.();
      });
      const endP = new Promise<void>((resolve) => {
        gz.once('end', () => {
          ended = true;
          resolve();
        });
        gz.once('error', () => resolve());
      });
      try {
        for await (const c of input) {
          await new Promise<void>((resolve) => {
            wake = resolve;
            if (err) resolve();
            else gz.write(c, () => resolve());
          });
          wake = null;
          if (err) throw corrupt(label, kind, err);
          while (out.length) yield out.shift()!;
        }
        gz.end();
        await endP;
        if (err) throw corrupt(label, kind, err);
        if (!ended) throw corrupt(label, kind, new Error('the gzip stream is incomplete'));
        while (out.length) yield out.shift()!;
      } finally {
        gz.destroy();
      }
      return;
    }
    case 'xz': {
      const parts: Buffer[] = [];
      for await (const c of input) parts.push(c);
      const { xz } = await import('@napi-rs/lzma');
      let out: Buffer;
      try {
        out = await xz.decompress(Buffer.concat(parts));
      } catch (e) {
        throw corrupt(label, kind, e);
      }
      yield out;
      return;
    }
    case 'zstd': {
      const { Decompress: ZstdDecompress } = await import('fzstd');
      const queue: Buffer[] = [];
      let finished = false;
      const d = new ZstdDecompress((data, final) => {
        queue.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
        if (final) finished = true;
      });
      try {
        for await (const c of input) {
          d.push(c);
          while (queue.length) yield queue.shift()!;
        }
        d.push(new Uint8Array(0), true);
      } catch (e) {
        if (e instanceof MkimgError) throw e;
        throw corrupt(label, kind, e);
      }
      while (queue.length) yield queue.shift()!;
      if (!finished) throw corrupt(label, kind, new Error('the zstd stream ends before its last frame is complete'));
      return;
    }
  }
}

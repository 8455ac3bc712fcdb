/**
 * Layers compressed piece by piece (SPEC §5.2): a layer of several pieces is
 * one valid gzip file of one member per piece (gzip -t, node:zlib, mkimg's
 * own decoder, which checks every member's trailer) or one zstd stream of
 * exactly its bytes; the thread pool (the compiled worker) gives the same
 * bytes as one thread, for any number of threads; a piece is libdeflate's
 * deflate data between a fixed header and its trailer; the size stays within
 * 5% of gzip -6.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { deflate } from 'libdeflate';
import { afterAll, describe, expect, it } from 'vitest';
import { compressFile, compressPiece, FRAME_BYTES, GZIP_LEVEL } from '../../src/oci/compress.js';
import { LayerDecoder } from '../../src/oci/decompress.js';
import type { CompressionPool as Pool, compressLayers as CompressLayers } from '../../src/oci/compress-pool.js';

const work = mkdtempSync(join(tmpdir(), 'mkimg-compress-threads-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Text-like bytes that compress as layers do (repetition at every distance), deterministic. */
function layerLike(size: number): Buffer {
  const b = Buffer.alloc(size);
  let x = 12345;
  const words = ['usr/lib/python3.11/', 'def ', 'import ', 'return ', '\n', '    ', 'self.', '0x7f', 'ELF'];
  let at = 0;
  while (at < size) {
    x = (x * 1103515245 + 12345) >>> 0;
    const w = x % 7 === 0 ? String(x) : words[x % words.length]!;
    at += b.write(w, at);
  }
  return b;
}

describe('layers compressed on threads', () => {
  const size = 2 * FRAME_BYTES + 123_457; // three pieces, the last short
  const input = join(work, 'layer.tar');
  const data = layerLike(size);
  writeFileSync(input, data);

  it('gzip and zstd of several pieces decompress to the layer, by every reader', async () => {
    for (const c of ['gzip', 'zstd'] as const) {
      const out = join(work, `seq.${c}`);
      const r = await compressFile(input, size, out, c);
      const blob = readFileSync(out);
      expect(r).toEqual({ sha256: sha(blob), size: blob.length });
      const chunks: Uint8Array[] = [];
      const d = new LayerDecoder(c, blob.length, out, (x) => chunks.push(Buffer.from(x)));
      d.write(blob);
      d.end();
      expect(sha(Buffer.concat(chunks))).toBe(sha(data));
      if (c === 'gzip') {
        expect(sha(gunzipSync(blob))).toBe(sha(data));
        execFileSync('gzip', ['-t', out]);
        const gz6 = execFileSync('gzip', ['-6', '-c', input], { maxBuffer: 1 << 28 });
        expect(blob.length / gz6.length).toBeLessThan(1.05);
      } else execFileSync('zstd', ['-t', '-q', out]);
    }
  });

  it('pieces of every kind of content are gzip members that gzip and node:zlib read as one file', async () => {
    // Random bytes (stored blocks), text, and runs, 8 pieces: seven joins at assorted bit positions.
    let x = 7;
    const mixed = Buffer.alloc(7 * FRAME_BYTES + 99_999);
    for (let i = 0; i < mixed.length; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      const kind = Math.floor(i / 300_007) % 3;
      mixed[i] = kind === 0 ? x >>> 24 : kind === 1 ? 97 + ((x >>> 16) % 26) : (i >> 12) & 0xff;
    }
    const path = join(work, 'mixed.tar');
    writeFileSync(path, mixed);
    await compressFile(path, mixed.length, join(work, 'mixed.gz'), 'gzip');
    expect(sha(gunzipSync(readFileSync(join(work, 'mixed.gz'))))).toBe(sha(mixed));
    execFileSync('gzip', ['-t', join(work, 'mixed.gz')]);
  });

  it('the compiled thread pool gives the bytes one thread gives, for 1, 2 and 4 threads', async () => {
    const compiled = join(import.meta.dirname, '../../dist/oci/compress-pool.js');
    expect(existsSync(compiled), 'run `npm run build` first').toBe(true);
    const { compressLayers } = (await import(compiled)) as { compressLayers: typeof CompressLayers };
    // A second, smaller layer: its pieces are handed out while the first layer's last ones compress.
    const second = join(work, 'second.tar');
    const secondSize = FRAME_BYTES + 4_321;
    writeFileSync(second, layerLike(secondSize + 77).subarray(77));
    for (const c of ['gzip', 'zstd'] as const) {
      const one = await compressFile(input, size, join(work, `one.${c}`), c);
      const oneSecond = await compressFile(second, secondSize, join(work, `one-second.${c}`), c);
      for (const threads of [1, 2, 4]) {
        const [a, b, d] = await compressLayers(
          [
            { input, size, output: join(work, `pool-${threads}-a.${c}`), compression: c },
            { input: second, size: secondSize, output: join(work, `pool-${threads}-b.${c}`), compression: c },
            { input, size, output: join(work, `pool-${threads}-d.${c}`), compression: c },
          ],
          { threads },
        );
        expect([a!.sha256, b!.sha256, d!.sha256], `${c}, ${threads} threads`).toEqual([
          one.sha256,
          oneSecond.sha256,
          one.sha256,
        ]);
        expect(b!.path).toBe(join(work, `pool-${threads}-b.${c}`));
        const written = readFileSync(join(work, `pool-${threads}-a.${c}`));
        expect(written.equals(readFileSync(join(work, `one.${c}`)))).toBe(true);
        expect(a!.size).toBe(written.length);
      }
    }
  });

  it('a layer compressed while it is written gives the bytes of one compressed after (pieces past the room in flight read back)', async () => {
    const compiled = join(import.meta.dirname, '../../dist/oci/compress-pool.js');
    const { CompressionPool } = (await import(compiled)) as { CompressionPool: typeof Pool };
    // Seven pieces: with two threads four fit in flight while it is written, the rest come from the file.
    const bigSize = 6 * FRAME_BYTES + 999;
    const big = layerLike(bigSize);
    for (const c of ['gzip', 'zstd'] as const) {
      const src = join(work, `stream-src.${c}`);
      writeFileSync(src, big);
      const one = await compressFile(src, bigSize, join(work, `stream-one.${c}`), c);
      for (const threads of [1, 2]) {
        const pool = CompressionPool.start({ threads });
        try {
          const input = join(work, `stream-${threads}.${c}.tar`);
          const output = `${input}.out`;
          const s = pool.stream({ input, size: bigSize, output, compression: c });
          const fd = openSync(input, 'wx');
          // Odd run lengths, as a layer writer emits them: pieces complete in the middle of a run.
          for (let at = 0, step = 3_000_017; at < bigSize; at += step) {
            const run = big.subarray(at, at + step);
            writeSync(fd, run, 0, run.length, at);
            s.write(run);
          }
          closeSync(fd);
          const r = await s.end();
          expect(r.sha256, `${c}, ${threads} threads`).toBe(one.sha256);
          expect(readFileSync(output).equals(readFileSync(join(work, `stream-one.${c}`)))).toBe(true);
        } finally {
          await pool.close();
        }
      }
    }
    // Every frame decodes (a second init of the shared zstd module once wrote corrupt frames here).
    execFileSync('zstd', ['-t', '-q', join(work, 'stream-1.zstd.tar.out')]);
  });

  it('a piece is one gzip member: fixed header, libdeflate at GZIP_LEVEL, CRC-32 and size; an empty layer is a valid empty stream', async () => {
    const small = layerLike(300_000);
    const member = Buffer.from(await compressPiece(small, 'gzip'));
    expect([...member.subarray(0, 10)]).toEqual([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
    const raw = deflate(small, GZIP_LEVEL);
    expect(member.subarray(10, 10 + raw.length).equals(Buffer.from(raw))).toBe(true);
    expect(member.length).toBe(10 + raw.length + 8);
    expect(member.readUInt32LE(member.length - 4)).toBe(small.length);
    expect(gunzipSync(member).equals(small)).toBe(true);
    const empty = join(work, 'empty.tar');
    writeFileSync(empty, '');
    await compressFile(empty, 0, join(work, 'empty.gz'), 'gzip');
    expect(gunzipSync(readFileSync(join(work, 'empty.gz'))).length).toBe(0);
  });

  it("mkimg's decoder checks every member's trailer, wherever the chunks it is given cut the members", async () => {
    const parts = [layerLike(70_001), layerLike(5).subarray(1), layerLike(123_457)];
    const members = await Promise.all(parts.map((p) => compressPiece(p, 'gzip')));
    const blob = Buffer.concat(members);
    const decode = (b: Buffer, step: number) => {
      const out: Uint8Array[] = [];
      const d = new LayerDecoder('gzip', b.length, 'layer.tar.gz', (x) => out.push(Buffer.from(x)));
      for (let at = 0; at < b.length; at += step) d.write(b.subarray(at, at + step));
      d.end();
      return Buffer.concat(out);
    };
    for (const step of [1, 3, 9, 4096, blob.length]) expect(decode(blob, step).equals(Buffer.concat(parts))).toBe(true);
    // The first member's CRC-32, then the middle member's size, changed: each is refused.
    for (const at of [members[0]!.length - 8, members[0]!.length + members[1]!.length - 1]) {
      const bad = Buffer.from(blob);
      bad[at]! ^= 1;
      for (const step of [7, blob.length])
        expect(() => decode(bad, step)).toThrow(/layer\.tar\.gz: a gzip trailer \(CRC-32, size\) does not match/);
    }
    // A blob cut after a whole member is truncated, not a shorter layer.
    expect(() => decode(blob.subarray(0, members[0]!.length + 20), 4096)).toThrow(/truncated/);
  });
});

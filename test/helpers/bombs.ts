/**
 * Decompression bombs made on the fly: a tar whose one file is `size` zero
 * bytes, compressed by the real xz / gzip programs from a stream (nothing of
 * that size is ever held in memory). A 100 MiB bomb is tens of KB compressed.
 */
import { spawnSync } from 'node:child_process';

function octal(n: number, len: number): string {
  return n.toString(8).padStart(len - 1, '0') + '\0';
}

/** A ustar header for a regular file `name` of `size` bytes. */
export function tarHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(0o644, 8), 100, 'latin1');
  h.write(octal(0, 8), 108, 'latin1');
  h.write(octal(0, 8), 116, 'latin1');
  h.write(octal(size, 12), 124, 'latin1');
  h.write(octal(1700000000, 12), 136, 'latin1');
  h.write('0', 156, 'latin1');
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return h;
}

/** A compressed tar holding `name` of `size` zero bytes (and the end blocks). */
export function compressedZeroTar(name: string, size: number, kind: 'xz' | 'gzip'): Buffer {
  const pad = (512 - (size % 512)) % 512;
  const compressor = kind === 'xz' ? 'xz -0 -T1 -c' : 'gzip -9 -c';
  const r = spawnSync('sh', ['-c', `{ cat; head -c ${size + pad + 1024} /dev/zero; } | ${compressor}`], {
    input: tarHeader(name, size),
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`making a bomb failed: ${r.stderr}`);
  return r.stdout;
}

import * as crypto from 'node:crypto';
import { createHash, type Hash } from 'node:crypto';
import { closeSync, createReadStream, openSync, readSync } from 'node:fs';

// crypto.hash (Node >= 20.12): one call, no Hash object; several times faster for small inputs.
const oneShot = (
  crypto as { hash?: (algorithm: string, data: Buffer | string, encoding: 'hex' | 'buffer') => string | Buffer }
).hash;

export function sha256Hex(data: Buffer | string): string {
  return oneShot ? (oneShot('sha256', data, 'hex') as string) : createHash('sha256').update(data).digest('hex');
}

/** The digest of data in one piece (crypto.hash where Node has it). */
export function digestOnce(algorithm: 'sha256' | 'sha1', data: Buffer): Buffer {
  return oneShot ? (oneShot(algorithm, data, 'buffer') as Buffer) : createHash(algorithm).update(data).digest();
}

export async function sha256File(path: string): Promise<{ hex: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    h.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { hex: h.digest('hex'), size };
}

export const SHA256_HEX = /^[0-9a-f]{64}$/;

const syncBuf = Buffer.allocUnsafe(1 << 20);

/** Feed a file's bytes, read synchronously into one reused buffer, to every hash; returns its size. */
function hashFileSync(path: string, hashes: Hash[]): number {
  const fd = openSync(path, 'r');
  let size = 0;
  try {
    for (;;) {
      const n = readSync(fd, syncBuf, 0, syncBuf.length, null);
      if (n === 0) break;
      for (const h of hashes) h.update(syncBuf.subarray(0, n));
      size += n;
    }
  } finally {
    closeSync(fd);
  }
  return size;
}

/**
 * sha256File, read synchronously: for a big file already in the page cache (a
 * cached layer blob), about half the time of a read stream's thread-pool
 * round trips. Blocks the thread while it reads.
 */
export function sha256FileSyncOnly(path: string): { hex: string; size: number } {
  const h = createHash('sha256');
  const size = hashFileSync(path, [h]);
  return { hex: h.digest('hex'), size };
}

/**
 * Synchronous sha256 (and sha1, for the SBOM, in the same read) of a file. For trees of many small files, synchronous
 * reads are several times faster than streams (no thread-pool round trip per
 * chunk), and mkimg's stages run one at a time anyway.
 */
export function sha256FileSync(path: string): { hex: string; size: number; sha1: string } {
  const h = createHash('sha256');
  const h1 = createHash('sha1');
  const size = hashFileSync(path, [h, h1]);
  return { hex: h.digest('hex'), size, sha1: h1.digest('hex') };
}

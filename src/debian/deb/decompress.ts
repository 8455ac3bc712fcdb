/**
 * Decompression of .deb members by their name's suffix: none, .gz (node:zlib),
 * .xz (the system's `xz` program, streamed through a pipe, so memory stays
 * bounded whatever the member expands to), .zst (fzstd, streamed). Corrupt
 * input is an 'input' error naming the member. Every decompressor is streamed:
 * a caller bounds the output with `maxBytes` (a decompression bomb stops at
 * the bound, not at the end of the memory). The zstd library is loaded on
 * first use.
 */
import { spawn } from 'node:child_process';
import { createGunzip } from 'node:zlib';
import { MkimgError } from '../../util/errors.js';

/** The most memory `xz` may use to decode one stream (its dictionary); `xz -9` needs 65 MiB. */
export const XZ_MEMLIMIT = '256MiB';

export interface DecompressLimit {
  /** Refuse output past this many bytes. */
  maxBytes: number;
  /** Why the limit is what it is, for the error line (e.g. "the control archive limit of 64 MiB"). */
  why: string;
}

/** Bytes as a short human figure for error lines. */
export function formatBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(1)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} bytes`;
}

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

export async function* decompress(
  input: AsyncIterable<Buffer>,
  kind: Compression,
  label: string,
  limit?: DecompressLimit,
): AsyncGenerator<Buffer> {
  if (!limit) {
    yield* decompressUnbounded(input, kind, label);
    return;
  }
  let total = 0;
  for await (const c of decompressUnbounded(input, kind, label)) {
    total += c.length;
    if (total > limit.maxBytes) {
      throw new MkimgError(
        'input',
        `${label}: decompresses to more than ${formatBytes(limit.maxBytes)} (${limit.why}); refused as a decompression bomb`,
        {
          hint: 'the package is hostile or damaged; if it is genuine, report it (the limits are in SPEC.md §4 "Limits")',
          details: { maxBytes: limit.maxBytes },
        },
      );
    }
    yield c;
  }
}

async function* decompressUnbounded(
  input: AsyncIterable<Buffer>,
  kind: Compression,
  label: string,
): AsyncGenerator<Buffer> {
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
    case 'xz':
      yield* xzStream(input, label);
      return;
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

/**
 * xz through the system's `xz -d`, which streams with memory bounded by the
 * stream's dictionary (XZ_MEMLIMIT). The input is pumped into its stdin as the
 * output is read (pipes give the back-pressure); stopping early kills it and
 * waits until the input is no longer read, so the caller's reader is left at a
 * known place, as with the other decompressors. An error of the input itself
 * (a truncated .deb) wins over xz's complaint about the input ending.
 */
async function* xzStream(input: AsyncIterable<Buffer>, label: string): AsyncGenerator<Buffer> {
  const child = spawn(
    'xz',
    ['--decompress', '--stdout', '--quiet', '--no-warn', `--memlimit-decompress=${XZ_MEMLIMIT}`],
    {
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    if (stderr.length < 4096) stderr += d;
  });
  // EPIPE when xz stops reading (corrupt data): its exit status says why.
  child.stdin.on('error', () => {});
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; err?: Error }>((resolve) => {
    child.once('error', (err) => resolve({ code: null, signal: null, err }));
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  let stop = false;
  const pumped = (async (): Promise<{ e: unknown } | null> => {
    try {
      for await (const c of input) {
        if (stop) break;
        if (!child.stdin.write(c)) {
          await new Promise<void>((resolve) => {
            const done = (): void => {
              child.stdin.off('drain', done);
              child.stdin.off('close', done);
              resolve();
            };
            child.stdin.on('drain', done);
            child.stdin.on('close', done);
          });
        }
        if (stop || child.stdin.destroyed) break;
      }
      child.stdin.end();
      return null;
    } catch (e) {
      child.stdin.destroy();
      return { e };
    }
  })();
  try {
    for await (const c of child.stdout) yield c as Buffer;
    const r = await exited;
    const p = await pumped;
    if (p) throw p.e;
    if (r.err) {
      const code = (r.err as NodeJS.ErrnoException).code;
      throw new MkimgError('environment', `${label}: cannot run xz to decompress it (${code ?? r.err.message})`, {
        hint: 'install xz-utils (the xz program)',
        cause: r.err,
      });
    }
    if (r.code !== 0) {
      const why =
        stderr
          .trim()
          .split('\n')[0]
          ?.replace(/^xz: \(stdin\): /, '') || `xz exited with ${r.code ?? r.signal}`;
      throw corrupt(label, 'xz', new Error(why));
    }
  } finally {
    stop = true;
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    child.stdin.destroy();
    child.stdout.destroy();
    await pumped;
    await exited;
  }
}

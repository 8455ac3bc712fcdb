/**
 * One streaming pass over an image tar: every entry's header, the sha256 and
 * size of every file, and the bytes of the small files (JSON: index.json,
 * manifest.json, oci-layout, image manifests and configs). Layers are hashed
 * while they stream by and never held in memory.
 */
import { createHash, type Hash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { MkimgError } from '../util/errors.js';
import { TarFormatError, TarParser, type TarBodySink, type TarHeader } from '../image/tar-reader.js';

/** Files up to this size are kept in memory (JSON documents are far smaller). */
export const SMALL_FILE_LIMIT = 4 * 1024 * 1024;
const READ_CHUNK = 4 * 1024 * 1024;

export interface ImageTarEntry {
  header: TarHeader;
  /** sha256 hex of the entry body (regular files only; '' otherwise). */
  sha256: string;
  /** Bytes actually read for the body. */
  size: number;
  /** The body, when it is a regular file of at most SMALL_FILE_LIMIT bytes. */
  bytes?: Buffer;
}

export interface ImageTarScan {
  path: string;
  entries: ImageTarEntry[];
  byName: Map<string, ImageTarEntry>;
  /** Total bytes of the tar file. */
  fileSize: number;
}

export interface ScanOptions {
  /** Called for each regular-file entry; may return an extra sink that sees the body (e.g. a nested tar parser). */
  tap?: (h: TarHeader) => TarBodySink | undefined;
  /** Keep bodies up to this many bytes (default SMALL_FILE_LIMIT). */
  keepLimit?: number;
}

/**
 * Read an image tar once. Throws MkimgError('integrity') on a malformed or
 * truncated tar, MkimgError('usage') if the file cannot be read.
 */
export async function scanImageTar(path: string, opts: ScanOptions = {}): Promise<ImageTarScan> {
  const keepLimit = opts.keepLimit ?? SMALL_FILE_LIMIT;
  const entries: ImageTarEntry[] = [];
  const byName = new Map<string, ImageTarEntry>();
  const parser = new TarParser((h) => {
    const entry: ImageTarEntry = { header: h, sha256: '', size: 0 };
    const dup = byName.get(h.name);
    if (dup) {
      throw new MkimgError(
        'integrity',
        `image ${path}: the entry ${h.name} appears twice (bytes ${dup.header.offset} and ${h.offset})`,
        {
          hint: 'the tar was tampered with or assembled by hand; rebuild it with mkimg build',
        },
      );
    }
    entries.push(entry);
    byName.set(h.name, entry);
    if (h.type !== '0' && h.type !== '7') return undefined;
    const hash: Hash = createHash('sha256');
    const keep = h.size <= keepLimit ? ([] as Buffer[]) : undefined;
    const extra = opts.tap?.(h);
    return {
      write(chunk: Buffer) {
        hash.update(chunk);
        entry.size += chunk.length;
        if (keep) keep.push(Buffer.from(chunk));
        extra?.write(chunk);
      },
      end() {
        entry.sha256 = hash.digest('hex');
        if (keep) entry.bytes = Buffer.concat(keep);
        extra?.end();
      },
    };
  });

  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw new MkimgError('usage', `cannot open image ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`, {
      hint: 'give the path of an image tar written by mkimg build',
    });
  }
  let fileSize = 0;
  try {
    // Two buffers, alternating: the parser consumes one synchronously while the next read fills the other.
    const bufs = [Buffer.allocUnsafe(READ_CHUNK), Buffer.allocUnsafe(READ_CHUNK)];
    let which = 0;
    let next = fh.read(bufs[0], 0, READ_CHUNK, null);
    for (;;) {
      const { bytesRead } = await next;
      if (bytesRead === 0) break;
      const cur = bufs[which];
      which ^= 1;
      next = fh.read(bufs[which], 0, READ_CHUNK, null);
      fileSize += bytesRead;
      parser.push(cur.subarray(0, bytesRead));
    }
    parser.end();
  } catch (e) {
    if (e instanceof TarFormatError) {
      throw new MkimgError('integrity', `image ${path} is not a whole tar: ${e.message}`, {
        hint: e.truncated
          ? 'the file was cut short (an interrupted copy or download?); fetch or build it again'
          : 'the file is corrupted; fetch or build it again',
        details: { offset: e.offset, truncated: e.truncated },
      });
    }
    throw e;
  } finally {
    await fh.close();
  }
  if (parser.trailingGarbage) {
    throw new MkimgError(
      'integrity',
      `image ${path} has non-zero bytes after the end-of-archive marker (byte ${parser.endOffset})`,
      {
        hint: 'the file was modified or concatenated with something else; fetch or build it again',
      },
    );
  }
  return { path, entries, byName, fileSize };
}

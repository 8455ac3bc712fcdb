/**
 * What verify and diff see of an image tar: every entry's header, the sha256
 * and size of every file, and the bytes of the small files (JSON: index.json,
 * manifest.json, oci-layout, image manifests and configs). The tar is indexed
 * by the image-tar reader (src/oci/image-tar.ts), then the bodies are read in
 * one sequential pass: layers are hashed while they stream by and never held
 * in memory.
 */
import { createHash, type Hash } from 'node:crypto';
import { MkimgError } from '../util/errors.js';
import { TarFormatError, type TarBodySink, type TarHeader } from '../image/tar-reader.js';
import { indexImageTar, JSON_LIMIT, pumpMembers, type TarMember } from '../oci/image-tar.js';

export interface ImageTarEntry {
  header: TarHeader;
  /** sha256 hex of the entry body (regular files only; '' otherwise). */
  sha256: string;
  /** Bytes actually read for the body. */
  size: number;
  /** The body, when it is a regular file of at most `keepLimit` bytes. */
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
  /** Keep bodies up to this many bytes (default JSON_LIMIT: the bodies kept are the JSON documents). */
  keepLimit?: number;
}

/**
 * Read an image tar once. Throws MkimgError('integrity') on a malformed or
 * truncated tar, MkimgError('usage') if the file cannot be read.
 */
export async function scanImageTar(path: string, opts: ScanOptions = {}): Promise<ImageTarScan> {
  const keepLimit = opts.keepLimit ?? JSON_LIMIT;
  const notWhole = (e: TarFormatError) =>
    new MkimgError('integrity', `image ${path} is not a whole tar: ${e.message}`, {
      hint: e.truncated
        ? 'the file was cut short (an interrupted copy or download?); fetch or build it again'
        : 'the file is corrupted; fetch or build it again',
      details: { offset: e.offset, truncated: e.truncated },
    });
  const cannotRead = (e: NodeJS.ErrnoException) =>
    new MkimgError('usage', `cannot open image ${path}: ${e.code ?? e}`, {
      hint: 'give the path of an image tar written by mkimg build',
    });
  const tar = await indexImageTar(path, { formatError: notWhole, readError: cannotRead });

  const entries: ImageTarEntry[] = [];
  const byName = new Map<string, ImageTarEntry>();
  const ofMember = new Map<TarMember, ImageTarEntry>();
  for (const m of tar.entries) {
    const h = m.header;
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
    const entry: ImageTarEntry = { header: h, sha256: '', size: 0 };
    entries.push(entry);
    byName.set(h.name, entry);
    ofMember.set(m, entry);
  }
  if (tar.trailingGarbage) {
    throw new MkimgError(
      'integrity',
      `image ${path} has non-zero bytes after the end-of-archive marker (byte ${tar.endOffset})`,
      {
        hint: 'the file was modified or concatenated with something else; fetch or build it again',
      },
    );
  }

  const files = tar.entries.filter((m) => m.type === '0' || m.type === '7');
  try {
    await pumpMembers(tar, files, (m) => {
      const entry = ofMember.get(m)!;
      const hash: Hash = createHash('sha256');
      const keep = m.size <= keepLimit ? ([] as Buffer[]) : undefined;
      const extra = opts.tap?.(m.header);
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
  } catch (e) {
    if (e instanceof TarFormatError) throw notWhole(e);
    if (!(e instanceof MkimgError) && (e as NodeJS.ErrnoException).code) throw cannotRead(e as NodeJS.ErrnoException);
    throw e;
  }
  return { path, entries, byName, fileSize: tar.fileSize };
}

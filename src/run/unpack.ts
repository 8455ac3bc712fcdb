/**
 * Unpack once, by content: each layer goes to <cache>/rootfs/sha256/<diff_id>/
 * (`root/` holds its files, `whiteouts` lists its OCI whiteouts), written in a
 * temporary folder beside it and renamed into place only after the layer's
 * blob digest and diff_id both checked out. A second run of the same image,
 * or of another image sharing the layer, unpacks nothing.
 *
 * The same safety rules as the staging root (a layer is untrusted input):
 * - names with ".." components or absolute names are refused;
 * - every parent of an entry must be a directory this layer made (or that
 *   is implied by a deeper name); an entry under a symlink or a file is
 *   refused, so nothing is written outside root/;
 * - hardlinks must point at a regular file this layer already wrote;
 * - device nodes, fifos and unknown entry types are refused;
 * - files get `mode & 0777` on disk (never setuid/setgid), directories at
 *   least 0755.
 *
 * Owners: run as root, the tracer maps the sandbox's ids 0..2^31-2 to host
 * ids 2^31.. (its sandbox policy: root inside is an unused id outside), so
 * entries are owned by SANDBOX_ID_BASE + their uid/gid on disk, and the
 * program sees the image's own owners (its root can write a --writable root,
 * a nonroot user its own 0600 files). Unprivileged, the cache is the
 * caller's, owners are not set, and the caller is the program's one id.
 */
import {
  closeSync,
  constants as C,
  existsSync,
  fchmodSync,
  fchownSync,
  lchownSync,
  linkSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { LayerDecoder } from '../oci/decompress.js';
import { MkimgError } from '../util/errors.js';
import { TarFormatError, TarParser, type TarBodySink, type TarHeader } from '../image/tar-reader.js';
import type { RunLayer } from './image.js';

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE = '.wh..wh..opq';

type Kind = 'dir' | 'file' | 'symlink';

/** Host id of sandbox id 0 when the tracer runs as root (tracer/mkimg-trace.c SANDBOX_ID_BASE). */
export const SANDBOX_ID_BASE = 2 ** 31;
const SANDBOX_ID_MAX = 2 ** 31 - 2;
/** Whether unpacked files get shifted owners (see above). */
export const SHIFT_OWNERS = typeof process.geteuid === 'function' && process.geteuid() === 0;

function escape(label: string, msg: string): MkimgError {
  return new MkimgError('integrity', `${label}: ${msg}`, {
    hint: 'this layer would write outside its unpack folder or holds what an image must not; nothing was unpacked',
  });
}

/** Normalize a tar member name to a relative path ("" for the root); throws on escape. */
export function memberPath(name: string, label: string): string {
  if (name.startsWith('/')) throw escape(label, `entry "${name}" has an absolute name`);
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw escape(label, `entry "${name}" has a ".." component`);
  return parts.join('/');
}

/** Writes one layer's entries under `root`, checking each against what it wrote before. */
class LayerWriter {
  private readonly kinds = new Map<string, Kind>([['', 'dir']]);
  readonly whiteouts: string[] = [];

  constructor(
    private readonly root: string,
    private readonly label: string,
  ) {}

  /** Give `p` the shifted owner of tar ids uid:gid (root only). */
  private own(p: string, uid: number, gid: number, rel: string): void {
    if (!SHIFT_OWNERS) return;
    if (uid > SANDBOX_ID_MAX || gid > SANDBOX_ID_MAX)
      throw escape(
        this.label,
        `entry "${rel}" has owner ${uid}:${gid}, beyond the sandbox's ids (0..${SANDBOX_ID_MAX})`,
      );
    lchownSync(p, SANDBOX_ID_BASE + uid, SANDBOX_ID_BASE + gid);
  }

  private parents(rel: string): void {
    let i = rel.indexOf('/');
    while (i !== -1) {
      const p = rel.slice(0, i);
      const k = this.kinds.get(p);
      if (k === undefined) {
        mkdirSync(join(this.root, p), 0o755);
        this.own(join(this.root, p), 0, 0, p);
        this.kinds.set(p, 'dir');
      } else if (k !== 'dir') {
        throw escape(this.label, `entry "${rel}" would be written through the ${k} "${p}"`);
      }
      i = rel.indexOf('/', i + 1);
    }
  }

  entry(h: TarHeader): TarBodySink | undefined {
    const rel = memberPath(h.name, this.label);
    if (rel === '') return undefined; // the layer's own "./"
    this.parents(rel);
    const base = rel.slice(rel.lastIndexOf('/') + 1);
    if (base.startsWith(WHITEOUT_PREFIX)) {
      // recorded for the merge of later layers; not a file of the image
      this.whiteouts.push(rel);
      return undefined;
    }
    const p = join(this.root, rel);
    const before = this.kinds.get(rel);
    const type = h.type;
    if (before !== undefined) {
      if (before === 'dir' && type === '5') {
        this.own(p, h.uid, h.gid, rel);
        return undefined;
      }
      if (before === 'dir') throw escape(this.label, `entry "${rel}" replaces a directory of the same layer`);
      unlinkSync(p);
      this.kinds.delete(rel);
    }
    const mode = h.mode & 0o777;
    switch (type) {
      case '5':
        mkdirSync(p, mode | 0o755);
        this.own(p, h.uid, h.gid, rel);
        this.kinds.set(rel, 'dir');
        return undefined;
      case '2':
        symlinkSync(h.linkname, p);
        this.own(p, h.uid, h.gid, rel);
        this.kinds.set(rel, 'symlink');
        return undefined;
      case '1': {
        const target = memberPath(h.linkname, this.label);
        if (this.kinds.get(target) !== 'file')
          throw escape(
            this.label,
            `hardlink "${rel}" points at "${h.linkname}", which is not a file this layer wrote before it`,
          );
        linkSync(join(this.root, target), p);
        this.kinds.set(rel, 'file');
        return undefined;
      }
      case '0':
      case '7': {
        const fd = openSync(p, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, mode);
        this.kinds.set(rel, 'file');
        if (SHIFT_OWNERS) {
          if (h.uid > SANDBOX_ID_MAX || h.gid > SANDBOX_ID_MAX) {
            closeSync(fd);
            throw escape(
              this.label,
              `entry "${rel}" has owner ${h.uid}:${h.gid}, beyond the sandbox's ids (0..${SANDBOX_ID_MAX})`,
            );
          }
          fchownSync(fd, SANDBOX_ID_BASE + h.uid, SANDBOX_ID_BASE + h.gid);
        }
        const fix = (mode & ~process.umask()) !== mode;
        if (h.size === 0) {
          if (fix) fchmodSync(fd, mode);
          closeSync(fd);
          return undefined;
        }
        return {
          write: (c) => {
            let off = 0;
            while (off < c.length) off += writeSync(fd, c, off, c.length - off);
          },
          end: () => {
            if (fix) fchmodSync(fd, mode);
            closeSync(fd);
          },
        };
      }
      case '3':
      case '4':
        throw escape(this.label, `entry "${rel}" is a device node`);
      case '6':
        throw escape(this.label, `entry "${rel}" is a fifo`);
      default:
        throw escape(this.label, `entry "${rel}" has tar type "${type}", which mkimg does not unpack`);
    }
  }
}

function hashing(hash: Hash): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      cb(null, chunk);
    },
  });
}

/**
 * Decompress through the shared bounded decoder (src/oci/decompress.ts): a
 * compression bomb stops at MAX_RATIO × the compressed size + MAX_SLACK, as
 * in verify, inspect and pull.
 */
function decoderStream(compression: 'gzip' | 'zstd', compressedSize: number, label: string): Transform {
  let out: Transform | undefined;
  const decoder = new LayerDecoder(compression, compressedSize, `${label} (${compression})`, (c) =>
    out!.push(Buffer.from(c.buffer, c.byteOffset, c.byteLength)),
  );
  out = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      try {
        decoder.write(chunk);
        cb();
      } catch (e) {
        cb(e as Error);
      }
    },
    flush(cb) {
      try {
        decoder.end();
        cb();
      } catch (e) {
        cb(e as Error);
      }
    },
  });
  return out;
}

/** Temporary folders being written now, removed by removeTemporaries() when mkimg is interrupted. */
export const temporaries = new Set<string>();

export function removeTemporaries(): void {
  for (const t of temporaries) rmSync(t, { recursive: true, force: true });
  temporaries.clear();
}

/** The folder of a layer in the cache: root/ and whiteouts. */
export function layerDir(cacheDir: string, diffId: string): string {
  return join(cacheDir, 'rootfs', 'sha256', diffId.slice('sha256:'.length));
}

/**
 * Unpack `layer` into the cache unless it is there already. Returns its folder
 * and whether it was unpacked now.
 */
export async function unpackLayer(
  cacheDir: string,
  layer: RunLayer,
  label: string,
): Promise<{ dir: string; unpacked: boolean }> {
  const final = layerDir(cacheDir, layer.diffId);
  if (existsSync(final)) return { dir: final, unpacked: false };
  const parent = join(cacheDir, 'rootfs', 'sha256');
  mkdirSync(parent, { recursive: true });
  const tmp = join(parent, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  temporaries.add(tmp);
  mkdirSync(join(tmp, 'root'), { recursive: true, mode: 0o755 });
  if (SHIFT_OWNERS) lchownSync(join(tmp, 'root'), SANDBOX_ID_BASE, SANDBOX_ID_BASE);
  try {
    const writer = new LayerWriter(join(tmp, 'root'), label);
    const parser = new TarParser((h) => writer.entry(h));
    const mt = layer.desc.mediaType ?? '';
    const compressed =
      mt.endsWith('+gzip') || mt.endsWith('.gzip')
        ? 'gzip'
        : mt.endsWith('+zstd') || mt.endsWith('.zstd')
          ? 'zstd'
          : mt.includes('+')
            ? mt
            : '';
    if (compressed && compressed !== 'gzip' && compressed !== 'zstd')
      throw new MkimgError('integrity', `${label}: media type ${mt} is not one mkimg can unpack`, {
        hint: 'layers may be uncompressed, gzip or zstd tars',
      });
    const blobHash = createHash('sha256');
    const diffHash = compressed ? createHash('sha256') : blobHash;
    // Each step passes its error on, so the loop below sees a bomb or a corrupt stream.
    const step = (from: Readable, to: Transform): Readable => {
      from.on('error', (e) => to.destroy(e));
      return from.pipe(to);
    };
    let stream: Readable = step(layer.open(), hashing(blobHash));
    if (compressed === 'gzip' || compressed === 'zstd')
      stream = step(step(stream, decoderStream(compressed, layer.desc.size, label)), hashing(diffHash));
    try {
      for await (const chunk of stream) parser.push(chunk as Buffer);
      parser.end();
    } catch (e) {
      if (e instanceof TarFormatError)
        throw new MkimgError('integrity', `${label}: ${e.message}`, {
          hint: 'the layer is not a whole tar; rebuild or pull the image again',
        });
      if (e instanceof MkimgError) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      if (
        code === 'Z_DATA_ERROR' ||
        code === 'Z_BUF_ERROR' ||
        /zstd|invalid|unexpected end/i.test((e as Error).message)
      ) {
        throw new MkimgError(
          'integrity',
          `${label}: cannot decompress the ${compressed} layer: ${(e as Error).message}`,
          { hint: 'rebuild or pull the image again' },
        );
      }
      throw e;
    }
    const blob = `sha256:${blobHash.digest('hex')}`;
    if (blob !== layer.desc.digest)
      throw new MkimgError('integrity', `${label}: blob has digest ${blob}, the manifest says ${layer.desc.digest}`, {
        hint: 'the image is damaged: rebuild or pull it again',
      });
    const diff = compressed ? `sha256:${diffHash.digest('hex')}` : blob;
    if (diff !== layer.diffId)
      throw new MkimgError(
        'integrity',
        `${label}: uncompressed layer has digest ${diff}, the config's diff_id says ${layer.diffId}`,
        { hint: 'the image is damaged: rebuild or pull it again' },
      );
    writeFileSync(join(tmp, 'whiteouts'), writer.whiteouts.map((w) => w + '\n').join(''));
    try {
      renameSync(tmp, final);
    } catch (e) {
      if (!existsSync(final)) throw e; // else: another run unpacked the same layer first
      rmSync(tmp, { recursive: true, force: true });
    }
    return { dir: final, unpacked: true };
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  } finally {
    temporaries.delete(tmp);
  }
}

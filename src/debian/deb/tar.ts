/**
 * A streaming tar reader (ustar, GNU and PAX). mkimg reads .deb tars with its
 * own reader rather than tar-stream because tar-stream decodes PAX values as
 * UTF-8 text, which mangles binary xattrs (SCHILY.xattr.security.capability);
 * here every PAX value is kept as raw bytes.
 *
 * Each entry's body must be consumed (or abandoned) before asking for the next
 * entry; whatever is left unread is skipped.
 */
import { isUtf8 } from 'node:buffer';
import { MkimgError } from '../../util/errors.js';
import { ByteReader } from './bytes.js';

export type TarEntryType = 'file' | 'hardlink' | 'symlink' | 'dir' | 'char' | 'block' | 'fifo' | 'unknown';

export interface TarEntry {
  /** The name as stored (after PAX path / GNU long name), e.g. "./usr/bin/env". */
  name: string;
  type: TarEntryType;
  /** Raw typeflag character. */
  typeflag: string;
  mode: number;
  uid: number;
  gid: number;
  /** Body size (0 for everything but regular files). */
  size: number;
  mtime: number;
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
  /** PAX records (global and per-entry merged), values as raw bytes. */
  pax: Record<string, Buffer>;
  /** Byte offset of the content in the (decompressed) tar stream: where `body` starts. */
  dataOffset: number;
  /** The file's content, streamed. */
  body: AsyncIterable<Buffer>;
  /** True when the stored name or link target is not valid UTF-8 (then shown with U+FFFD; the unpacker refuses it). */
  notUtf8?: boolean;
}

const BLOCK = 512;

export async function* readTar(
  source: AsyncIterable<Uint8Array> | ByteReader,
  label: string,
): AsyncGenerator<TarEntry> {
  const r = source instanceof ByteReader ? source : new ByteReader(source, label);
  let globalPax: Record<string, Buffer> = {};
  let pax: Record<string, Buffer> | null = null;
  let longName: Buffer | null = null;
  let longLink: Buffer | null = null;
  try {
    for (;;) {
      const h = await r.read(BLOCK);
      if (h.length === 0) return; // EOF without end blocks: accepted, as GNU tar does
      if (h.length < BLOCK) throw corrupt(label, `truncated header at offset ${r.offset - h.length}`);
      if (isZero(h)) return; // end-of-archive marker
      verifyChecksum(h, label, r.offset - BLOCK);
      const typeflag = h[156] === 0 ? '0' : String.fromCharCode(h[156]);
      const size = num(h, 124, 12, 'size', label);
      const padded = Math.ceil(size / BLOCK) * BLOCK;

      if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K') {
        if (size > 16 << 20) throw corrupt(label, `metadata record of ${size} bytes`);
        const data = await r.readExact(size, 'a tar metadata record');
        await r.readExact(padded - size, 'tar padding');
        if (typeflag === 'x') pax = { ...globalPax, ...parsePax(data, label) };
        else if (typeflag === 'g') globalPax = { ...globalPax, ...parsePax(data, label) };
        else if (typeflag === 'L') longName = cbytes(data);
        else longLink = cbytes(data);
        continue;
      }

      const ustar = h.subarray(257, 263).toString('latin1') === 'ustar\0';
      let nameBytes = cbytes(h.subarray(0, 100));
      if (ustar) {
        const prefix = cbytes(h.subarray(345, 500));
        if (prefix.length) nameBytes = Buffer.concat([prefix, Buffer.from('/'), nameBytes]);
      }
      let linkBytes = cbytes(h.subarray(157, 257));
      const rec = pax ?? globalPax;
      if (longName !== null) nameBytes = longName;
      if (longLink !== null) linkBytes = longLink;
      if (rec.path?.length) nameBytes = rec.path;
      if (rec.linkpath?.length) linkBytes = rec.linkpath;
      const notUtf8 = !isUtf8(nameBytes) || !isUtf8(linkBytes);
      const name = nameBytes.toString('utf8');
      const linkname = linkBytes.toString('utf8');
      let realSize = size;
      if (rec.size?.length) realSize = paxInt(rec.size, 'size', label);
      const e: Omit<TarEntry, 'body' | 'dataOffset'> = {
        name,
        type: typeOf(typeflag),
        typeflag,
        mode: num(h, 100, 8, 'mode', label) & 0o7777,
        uid: rec.uid?.length ? paxInt(rec.uid, 'uid', label) : num(h, 108, 8, 'uid', label),
        gid: rec.gid?.length ? paxInt(rec.gid, 'gid', label) : num(h, 116, 8, 'gid', label),
        size: 0,
        mtime: rec.mtime?.length ? Math.floor(Number(rec.mtime.toString('latin1'))) : num(h, 136, 12, 'mtime', label),
        linkname,
        uname: rec.uname?.length ? rec.uname.toString('utf8') : cstr(h.subarray(265, 297)),
        gname: rec.gname?.length ? rec.gname.toString('utf8') : cstr(h.subarray(297, 329)),
        devmajor: typeflag === '3' || typeflag === '4' ? num(h, 329, 8, 'devmajor', label) : 0,
        devminor: typeflag === '3' || typeflag === '4' ? num(h, 337, 8, 'devminor', label) : 0,
        pax: rec,
        ...(notUtf8 ? { notUtf8: true } : {}),
      };
      pax = null;
      longName = null;
      longLink = null;
      if (name.includes('\0') || linkname.includes('\0')) throw corrupt(label, `entry name with a NUL byte`);

      // Only regular files carry data; other types' size fields are ignored (but skipped if set).
      const hasData = e.type === 'file';
      const dataSize = hasData ? realSize : rec.size?.length ? realSize : size;
      if (hasData) e.size = realSize;
      let consumed = 0;
      const what = `the content of ${name}`;
      const body: AsyncIterable<Buffer> = hasData
        ? { [Symbol.asyncIterator]: () => r.chunks(dataSize - consumed, what, (n) => (consumed += n)) }
        : { [Symbol.asyncIterator]: async function* () {} };
      yield { ...e, dataOffset: r.offset, body };
      if (dataSize - consumed > 0) await r.skip(dataSize - consumed, what);
      const pad = Math.ceil(dataSize / BLOCK) * BLOCK - dataSize;
      if (pad > 0) await r.readExact(pad, 'tar padding');
    }
  } finally {
    if (!(source instanceof ByteReader)) await r.close();
  }
}

function typeOf(t: string): TarEntryType {
  switch (t) {
    case '0':
    case '7':
      return 'file';
    case '1':
      return 'hardlink';
    case '2':
      return 'symlink';
    case '3':
      return 'char';
    case '4':
      return 'block';
    case '5':
      return 'dir';
    case '6':
      return 'fifo';
    default:
      return 'unknown';
  }
}

function isZero(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

function cbytes(b: Buffer): Buffer {
  const z = b.indexOf(0);
  return b.subarray(0, z === -1 ? b.length : z);
}

function cstr(b: Buffer): string {
  const z = b.indexOf(0);
  return b.subarray(0, z === -1 ? b.length : z).toString('utf8');
}

function num(h: Buffer, off: number, len: number, what: string, label: string): number {
  const f = h.subarray(off, off + len);
  if (f[0] & 0x80) {
    // GNU base-256: big-endian, first byte's high bit is the marker.
    let v = f[0] & 0x7f;
    for (let i = 1; i < f.length; i++) v = v * 256 + f[i];
    if (!Number.isSafeInteger(v)) throw corrupt(label, `${what} field out of range`);
    return v;
  }
  const s = f
    .toString('latin1')
    .replace(/[\0 ]+$/, '')
    .replace(/^ +/, '');
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw corrupt(label, `${what} field "${s.replace(/[^\x20-\x7e]/g, '?')}" is not octal`);
  return parseInt(s, 8);
}

function paxInt(v: Buffer, what: string, label: string): number {
  const s = v.toString('latin1');
  if (!/^[0-9]+$/.test(s)) throw corrupt(label, `PAX ${what} "${s}" is not a number`);
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw corrupt(label, `PAX ${what} out of range`);
  return n;
}

function verifyChecksum(h: Buffer, label: string, at: number): void {
  const stored = num(h, 148, 8, 'checksum', label);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i];
  if (sum !== stored) throw corrupt(label, `header checksum mismatch at offset ${at}`);
}

/** PAX records: "<len> <key>=<value>\n", len counting the whole record. Values stay bytes. */
export function parsePax(buf: Buffer, label: string): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  let p = 0;
  while (p < buf.length) {
    if (buf[p] === 0) break;
    const sp = buf.indexOf(0x20, p);
    if (sp === -1) throw corrupt(label, 'bad PAX record (no length)');
    const len = Number(buf.subarray(p, sp).toString('latin1'));
    if (!Number.isSafeInteger(len) || len <= sp - p + 1 || p + len > buf.length || buf[p + len - 1] !== 0x0a) {
      throw corrupt(label, 'bad PAX record length');
    }
    const rec = buf.subarray(sp + 1, p + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq === -1) throw corrupt(label, 'bad PAX record (no "=")');
    out[rec.subarray(0, eq).toString('utf8')] = Buffer.from(rec.subarray(eq + 1));
    p += len;
  }
  return out;
}

function corrupt(label: string, why: string): MkimgError {
  return new MkimgError('input', `${label}: corrupt tar archive: ${why}`, {
    hint: 'the package is damaged; delete it from the cache and fetch it again',
  });
}

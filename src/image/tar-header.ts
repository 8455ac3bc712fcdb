/**
 * Tar headers decided by value alone. USTAR where the fields fit, a PAX
 * extended header (records sorted by key, fixed name) where they do not, for
 * security.capability, and where the caller asks for a header of a given
 * length (a `comment` record as padding). Every header field mkimg does not decide is zero:
 * uname/gname empty, devmajor/devminor zero, no atime/ctime.
 */

import { MkimgError } from '../util/errors.js';

export type TarType = 'file' | 'dir' | 'symlink' | 'hardlink';

export interface TarHeader {
  name: string; // relative, "usr/bin/env"; directories without trailing slash (added here)
  type: TarType;
  mode: number;
  uid: number;
  gid: number;
  size: number; // files only
  mtime: number; // seconds
  linkname?: string;
  xattrs?: Record<string, Buffer>; // only security.capability is ever passed
}

const TYPEFLAG: Record<TarType, string> = { file: '0', hardlink: '1', symlink: '2', dir: '5' };
const PAX_NAME = '././@PaxHeader';
const MAX_OCTAL_11 = 0o77777777777; // size and mtime fields
const MAX_OCTAL_7 = 0o7777777; // uid and gid fields

export const BLOCK = 512;

/** Bytes of zero padding that follow `size` bytes of content. */
export function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/** What encodeHeader decides before writing: the name as stored, its USTAR split, and the PAX records needed. */
function prepare(h: TarHeader) {
  const name = h.type === 'dir' ? h.name + '/' : h.name;
  const pax: Array<[string, Buffer]> = [];
  const split = splitName(name);
  if (!split) pax.push(['path', Buffer.from(name, 'utf8')]);
  const linkname = h.linkname ?? '';
  if (Buffer.byteLength(linkname) > 100) pax.push(['linkpath', Buffer.from(linkname, 'utf8')]);
  const size = h.type === 'file' ? h.size : 0;
  if (size > MAX_OCTAL_11) pax.push(['size', Buffer.from(String(size))]);
  if (h.uid > MAX_OCTAL_7) pax.push(['uid', Buffer.from(String(h.uid))]);
  if (h.gid > MAX_OCTAL_7) pax.push(['gid', Buffer.from(String(h.gid))]);
  if (h.xattrs) for (const [k, v] of Object.entries(h.xattrs)) pax.push([`SCHILY.xattr.${k}`, v]);
  return { name, split, linkname, size, pax };
}

/** The length of encodeHeader(h) (without `length`), without encoding it. */
export function headerLength(h: TarHeader): number {
  const { pax } = prepare(h);
  return pax.length === 0 ? BLOCK : 2 * BLOCK + paddedPaxLength(pax);
}

/**
 * The header block(s) for one entry: an optional PAX header + its data, then
 * the USTAR block.
 *
 * With `length` (a multiple of 512, at least the natural length), the blocks
 * take exactly `length` bytes: a PAX header is added if there is none, and a
 * PAX `comment` record (which readers ignore) takes the extra room. The image
 * tar uses this to put a layer's data at an offset fixed before the layer's
 * digest is known (layout.ts, SPEC §5). The PAX data then fills its blocks
 * exactly, with no zero padding: the records the entry needs anyway plus
 * `comment`, whose value is '0's. (Exactly one extra block on an entry with
 * no PAX header of its own gives a PAX header with no records.)
 */
export function encodeHeader(h: TarHeader, length?: number): Buffer {
  const { name, split, linkname, size, pax } = prepare(h);
  const ustar = ustarBlock({
    name: split ? split.name : asciiFallback(name, 100),
    prefix: split ? split.prefix : '',
    mode: h.mode & 0o7777,
    uid: Math.min(h.uid, MAX_OCTAL_7),
    gid: Math.min(h.gid, MAX_OCTAL_7),
    size: Math.min(size, MAX_OCTAL_11),
    mtime: h.mtime,
    typeflag: TYPEFLAG[h.type],
    linkname: Buffer.byteLength(linkname) > 100 ? asciiFallback(linkname, 100) : linkname,
  });
  let padded = false;
  if (length !== undefined) {
    const natural = pax.length === 0 ? BLOCK : 2 * BLOCK + paddedPaxLength(pax);
    if (length < natural || length % BLOCK !== 0) {
      throw new MkimgError(
        'internal',
        `tar header for ${name}: cannot take ${length} bytes (it needs ${natural}, in 512-byte blocks)`,
      );
    }
    if (length > natural) {
      padded = true;
      // The PAX data fills every block between the PAX header and the USTAR block.
      const fill = length - 2 * BLOCK - recordsLength(pax);
      if (fill > 0) pax.push(['comment', Buffer.alloc(commentValueLength(fill), '0')]);
    }
  }
  if (pax.length === 0 && !padded) return ustar;

  pax.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const data = Buffer.concat(pax.map(([k, v]) => paxRecord(k, v)));
  const paxHeader = ustarBlock({
    name: PAX_NAME,
    prefix: '',
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: data.length,
    mtime: h.mtime,
    typeflag: 'x',
    linkname: '',
  });
  return Buffer.concat([paxHeader, data, Buffer.alloc(padding(data.length)), ustar]);
}

function recordsLength(pax: Array<[string, Buffer]>): number {
  let n = 0;
  for (const [k, v] of pax) n += recordLength(k, v.length);
  return n;
}

function paddedPaxLength(pax: Array<[string, Buffer]>): number {
  const n = recordsLength(pax);
  return n + padding(n);
}

function recordLength(key: string, valueLength: number): number {
  const body = Buffer.byteLength(key) + valueLength + 3; // space, '=', '\n'
  let len = body + String(body).length;
  if (String(len).length !== String(body).length) len = body + String(len).length;
  return len;
}

/** The value length that makes a `comment` record exactly `total` bytes long ("LEN comment=VALUE\n"). */
function commentValueLength(total: number): number {
  // LEN's digits are those of `total` itself; "comment=" and the space and newline take 10 more.
  const v = total - String(total).length - 10;
  if (v < 0 || recordLength('comment', v) !== total)
    throw new MkimgError('internal', `no PAX comment record is ${total} bytes long`);
  return v;
}

/** "LEN key=value\n" where LEN counts the whole record, its own digits included. */
function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.byteLength(key) + value.length + 3; // space, '=', '\n'
  let len = body + String(body).length;
  if (String(len).length !== String(body).length) len = body + String(len).length;
  return Buffer.concat([Buffer.from(`${len} ${key}=`), value, Buffer.from('\n')]);
}

function splitName(name: string): { name: string; prefix: string } | null {
  const bytes = Buffer.byteLength(name);
  if (bytes <= 100) return { name, prefix: '' };
  if (bytes > 256) return null;
  // The last '/' that leaves a prefix of at most 155 bytes and a name of at most 100.
  for (let i = name.length - 1; i > 0; i--) {
    if (name[i] !== '/') continue;
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(rest) <= 100 && rest.length > 0)
      return { name: rest, prefix };
  }
  return null;
}

/** What readers without PAX support see: the name cut to fit (PAX readers use the record). */
function asciiFallback(s: string, max: number): Buffer {
  return Buffer.from(s, 'utf8').subarray(0, max);
}

interface UstarFields {
  name: string | Buffer;
  prefix: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: string | Buffer;
}

// The bytes every USTAR block shares: checksum field as spaces (it is summed
// that way), magic and version, zero-filled devmajor/devminor like GNU tar
// writes for non-devices. uname, gname: empty.
const TEMPLATE = (() => {
  const b = Buffer.alloc(BLOCK);
  b.fill(0x20, 148, 156);
  b.write('ustar\x0000', 257, 8, 'latin1');
  b.write('0000000\x00', 329, 8, 'latin1');
  b.write('0000000\x00', 337, 8, 'latin1');
  return b;
})();
const TEMPLATE_SUM = TEMPLATE.reduce((a, x) => a + x, 0);

function ustarBlock(f: UstarFields): Buffer {
  const b = Buffer.allocUnsafe(BLOCK); // from the pool: many small headers
  TEMPLATE.copy(b);
  const name = writeString(b, 0, 100, f.name);
  writeOctal(b, 100, 8, f.mode);
  writeOctal(b, 108, 8, f.uid);
  writeOctal(b, 116, 8, f.gid);
  writeOctal(b, 124, 12, f.size);
  writeOctal(b, 136, 12, f.mtime);
  b[156] = f.typeflag.charCodeAt(0);
  const link = writeString(b, 157, 100, f.linkname);
  const prefix = writeString(b, 345, 155, f.prefix);
  // The checksum: the template's bytes plus those written over its zeros.
  const sum =
    TEMPLATE_SUM +
    byteSum(b, 0, name) +
    byteSum(b, 100, 148) +
    b[156]! +
    byteSum(b, 157, 157 + link) +
    byteSum(b, 345, 345 + prefix);
  writeOctal(b, 148, 7, sum); // six digits and NUL; the eighth byte stays a space
  return b;
}

function byteSum(b: Buffer, from: number, to: number): number {
  let sum = 0;
  for (let i = from; i < to; i++) sum += b[i]!;
  return sum;
}

/** Copy up to `len` bytes of `s` (UTF-8) into the zero-filled field (the rest stays zero); returns the bytes written. */
function writeString(b: Buffer, off: number, len: number, s: string | Buffer): number {
  if (typeof s === 'string') {
    if (s.length === 0) return 0;
    // Buffer#write stops before a character that does not fit whole; the field takes its first bytes anyway.
    const n = b.write(s, off, len, 'utf8');
    if (n > len - 4 && Buffer.byteLength(s) > n) return Buffer.from(s, 'utf8').copy(b, off, 0, len);
    return n;
  }
  return s.copy(b, off, 0, Math.min(len, s.length));
}

/** `v` in octal, zero-padded to len - 1 digits, then NUL. */
function writeOctal(b: Buffer, off: number, len: number, v: number) {
  v = Math.floor(v);
  if (v < 0 || v >= 8 ** (len - 1)) {
    // Does not fit (mkimg clamps what it can): the digits cut to the field, as before.
    b.write(v.toString(8).padStart(len - 1, '0') + '\x00', off, len, 'latin1');
    return;
  }
  b[off + len - 1] = 0;
  for (let i = off + len - 2; i >= off; i--) {
    b[i] = 0x30 + (v % 8);
    v = Math.floor(v / 8);
  }
}

/**
 * The one reader for image tars (and the layer tars inside them): a small push
 * parser for POSIX/ustar tar streams, used by verify, diff, inspect and the
 * image-tar index (src/oci/image-tar.ts).
 *
 * Why not tar-stream: verify --no-rebuild must run at the speed of hashing
 * the file. This parser is synchronous and hands entry bodies to the caller as
 * views into the caller's read buffer (no copies, no stream machinery), so the
 * outer image tar and the layer tars nested inside it are parsed by the same
 * code: feed it chunks with push(), then end().
 *
 * It understands ustar headers (with prefix), base-256 numbers, pax extended
 * headers ('x' per entry, 'g' global) and GNU long names ('L', 'K'); it checks
 * every header checksum, and reports truncation: end() before the last entry's
 * body and padding, or without the end-of-archive zero block.
 */

export interface TarHeader {
  /** Effective name: pax path / GNU long name / prefix + name. */
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  /** The type flag character: '0' file, '1' hard link, '2' symlink, '3' char, '4' block, '5' dir, '6' fifo, ... */
  type: string;
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
  /** ustar magic + version as found ("ustar\0" + "00" for POSIX, "ustar " + " \0" for GNU). */
  magic: string;
  /** The pax records that applied to this entry (per-entry, over global), in file order. */
  pax: Record<string, string>;
  /** Byte offset of this entry's (first) header in the stream. */
  offset: number;
}

export interface TarBodySink {
  write(chunk: Buffer): void;
  end(): void;
}

export class TarFormatError extends Error {
  constructor(
    message: string,
    readonly offset: number,
    readonly truncated = false,
  ) {
    super(message);
    this.name = 'TarFormatError';
  }
}

type State = 'header' | 'body' | 'padding' | 'meta' | 'eof';

const BLOCK = 512;

export class TarParser {
  private state: State = 'header';
  private readonly hdr = Buffer.alloc(BLOCK);
  private hdrFill = 0;
  private remaining = 0; // body or padding bytes left
  private sink: TarBodySink | undefined;
  private meta: Buffer[] = [];
  private metaType = '';
  private pending: { pax: Record<string, string>; longName?: string; longLink?: string; offset: number } | undefined;
  private globalPax: Record<string, string> = {};
  private pos = 0; // bytes consumed
  private entryOffset = 0;
  /** Offset of the first end-of-archive zero block, once seen. */
  endOffset = -1;
  /** True if non-zero bytes followed the end-of-archive marker. */
  trailingGarbage = false;
  entries = 0;

  constructor(private readonly onEntry: (h: TarHeader) => TarBodySink | undefined) {}

  push(buf: Buffer): void {
    let i = 0;
    const n = buf.length;
    while (i < n) {
      switch (this.state) {
        case 'header': {
          const take = Math.min(BLOCK - this.hdrFill, n - i);
          if (this.hdrFill === 0 && take === BLOCK) {
            // whole header in this chunk: no copy
            this.pos += BLOCK;
            this.header(buf.subarray(i, i + BLOCK));
          } else {
            buf.copy(this.hdr, this.hdrFill, i, i + take);
            this.hdrFill += take;
            this.pos += take;
            if (this.hdrFill === BLOCK) {
              this.hdrFill = 0;
              this.header(this.hdr);
            }
          }
          i += take;
          break;
        }
        case 'body':
        case 'meta': {
          const take = Math.min(this.remaining, n - i);
          const part = buf.subarray(i, i + take);
          if (this.state === 'body') this.sink?.write(part);
          else this.meta.push(Buffer.from(part));
          this.remaining -= take;
          this.pos += take;
          i += take;
          if (this.remaining === 0) this.endBody();
          break;
        }
        case 'padding': {
          const take = Math.min(this.remaining, n - i);
          this.remaining -= take;
          this.pos += take;
          i += take;
          if (this.remaining === 0) this.state = 'header';
          break;
        }
        case 'eof': {
          if (!this.trailingGarbage) {
            for (let j = i; j < n; j++) {
              if (buf[j] !== 0) {
                this.trailingGarbage = true;
                break;
              }
            }
          }
          this.pos += n - i;
          i = n;
          break;
        }
      }
    }
  }

  /** Call after the last chunk. Throws TarFormatError if the stream stopped early. */
  end(): void {
    if (this.state === 'eof') return;
    if (this.state === 'header' && this.hdrFill === 0) {
      throw new TarFormatError(
        `tar ends at byte ${this.pos} without the end-of-archive marker (truncated?)`,
        this.pos,
        true,
      );
    }
    throw new TarFormatError(
      `tar is truncated at byte ${this.pos}, inside the entry that starts at byte ${this.entryOffset}`,
      this.pos,
      true,
    );
  }

  get bytesConsumed(): number {
    return this.pos;
  }

  /** True once the end-of-archive marker has been read. */
  get ended(): boolean {
    return this.state === 'eof';
  }

  /**
   * For a reader with random access: pass over the current entry's body (if
   * its onEntry returned no sink) and padding without reading them, as if
   * they had been pushed. Returns the number of bytes passed over, so the
   * caller can seek that far ahead; 0 if the parser is not in a body or padding.
   */
  skip(): number {
    let n = 0;
    if (this.state === 'body' && !this.sink) {
      n += this.remaining;
      this.pos += this.remaining;
      this.remaining = 0;
      this.endBody();
    }
    if (this.state === 'padding') {
      n += this.remaining;
      this.pos += this.remaining;
      this.remaining = 0;
      this.state = 'header';
    }
    return n;
  }

  private header(h: Buffer): void {
    const start = this.pos - BLOCK;
    if (isZero(h)) {
      this.state = 'eof';
      this.endOffset = start;
      if (this.pending)
        throw new TarFormatError(
          `tar has an extended header at byte ${this.pending.offset} with no entry after it`,
          start,
        );
      return;
    }
    const stored = readNum(h, 148, 8, start, 'checksum');
    let sum = 0;
    for (let j = 0; j < BLOCK; j++) sum += j >= 148 && j < 156 ? 32 : h[j];
    if (sum !== stored)
      throw new TarFormatError(
        `tar header at byte ${start} has a bad checksum (stored ${stored}, computed ${sum}): corrupted`,
        start,
      );
    const typeByte = h[156];
    const type = typeByte === 0 ? '0' : String.fromCharCode(typeByte);
    const size = readNum(h, 124, 12, start, 'size');
    if (!this.pending) this.entryOffset = start;
    if (type === 'x' || type === 'g' || type === 'L' || type === 'K') {
      if (size > 16 * 1024 * 1024)
        throw new TarFormatError(`tar extended header at byte ${start} is implausibly large (${size} bytes)`, start);
      this.pending ??= { pax: {}, offset: start };
      this.metaType = type;
      this.meta = [];
      this.remaining = size;
      this.state = 'meta';
      if (size === 0) this.endBody();
      return;
    }
    const magic = latin1(h, 257, 8);
    const ustar = magic.startsWith('ustar');
    let name = str(h, 0, 100);
    const prefix = ustar && magic === 'ustar\u000000' ? str(h, 345, 155) : '';
    if (prefix) name = prefix + '/' + name;
    const pend = this.pending;
    this.pending = undefined;
    const pax = { ...this.globalPax, ...(pend?.pax ?? {}) };
    const header: TarHeader = {
      name: pax.path ?? pend?.longName ?? name,
      mode: readNum(h, 100, 8, start, 'mode'),
      uid: pax.uid !== undefined ? Number(pax.uid) : readNum(h, 108, 8, start, 'uid'),
      gid: pax.gid !== undefined ? Number(pax.gid) : readNum(h, 116, 8, start, 'gid'),
      size: pax.size !== undefined ? Number(pax.size) : size,
      mtime: pax.mtime !== undefined ? Number(pax.mtime) : readNum(h, 136, 12, start, 'mtime'),
      type,
      linkname: pax.linkpath ?? pend?.longLink ?? str(h, 157, 100),
      uname: pax.uname ?? (ustar ? str(h, 265, 32) : ''),
      gname: pax.gname ?? (ustar ? str(h, 297, 32) : ''),
      devmajor: ustar ? readNum(h, 329, 8, start, 'devmajor') : 0,
      devminor: ustar ? readNum(h, 337, 8, start, 'devminor') : 0,
      magic,
      pax: pend?.pax ?? {},
      offset: this.entryOffset,
    };
    this.entries++;
    // Links, dirs, devices and fifos carry no body whatever their size field says (ustar).
    const bodySize = type === '0' || type === '7' || !/^[1-6]$/.test(type) ? header.size : 0;
    this.sink = this.onEntry(header);
    this.remaining = bodySize;
    this.state = 'body';
    if (bodySize === 0) this.endBody();
  }

  private endBody(): void {
    const padded = (BLOCK - ((this.pos - 0) % BLOCK)) % BLOCK;
    if (this.state === 'meta') {
      const data = Buffer.concat(this.meta);
      this.meta = [];
      const p = this.pending!;
      if (this.metaType === 'x') Object.assign(p.pax, parsePax(data, p.offset));
      else if (this.metaType === 'g') {
        Object.assign(this.globalPax, parsePax(data, p.offset));
        this.pending = undefined;
      } else if (this.metaType === 'L') p.longName = cstr(data);
      else if (this.metaType === 'K') p.longLink = cstr(data);
    } else {
      const s = this.sink;
      this.sink = undefined;
      s?.end();
    }
    this.remaining = padded;
    this.state = padded ? 'padding' : 'header';
  }
}

function isZero(b: Buffer): boolean {
  for (let j = 0; j < b.length; j++) if (b[j] !== 0) return false;
  return true;
}

function latin1(b: Buffer, off: number, len: number): string {
  return b.toString('latin1', off, off + len);
}

function str(b: Buffer, off: number, len: number): string {
  let end = off;
  const lim = off + len;
  while (end < lim && b[end] !== 0) end++;
  return b.toString('utf8', off, end);
}

function cstr(b: Buffer): string {
  const z = b.indexOf(0);
  return b.toString('utf8', 0, z < 0 ? b.length : z);
}

function readNum(b: Buffer, off: number, len: number, at: number, field: string): number {
  if (b[off] & 0x80) {
    // base-256: big-endian two's complement, first byte's top bit is the marker
    let v = b[off] & 0x7f;
    for (let j = off + 1; j < off + len; j++) v = v * 256 + b[j];
    return v;
  }
  let s = '';
  for (let j = off; j < off + len; j++) {
    const c = b[j];
    if (c === 0) break;
    s += String.fromCharCode(c);
  }
  s = s.trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s))
    throw new TarFormatError(
      `tar header at byte ${at} has a malformed ${field} field ${JSON.stringify(s)}: corrupted`,
      at,
    );
  return parseInt(s, 8);
}

/**
 * PAX records as key → value. Values are UTF-8 text, except `SCHILY.xattr.*`
 * values, which are binary and decoded as latin1 (one char per byte).
 */
export function parsePax(data: Buffer, at = 0): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < data.length) {
    const sp = data.indexOf(0x20, i);
    if (sp < 0) break;
    const len = parseInt(data.toString('latin1', i, sp), 10);
    if (!Number.isFinite(len) || len <= 0 || i + len > data.length) {
      throw new TarFormatError(`tar pax header at byte ${at} has a malformed record`, at);
    }
    const eq = data.indexOf(0x3d, sp + 1); // '='
    if (eq > sp + 1 && eq < i + len - 1) {
      const key = data.toString('utf8', sp + 1, eq);
      // Extended attributes are binary (security.capability): keep every byte
      // (latin1 maps bytes 1:1), so two different values never decode alike.
      out[key] = data.toString(key.startsWith('SCHILY.xattr.') ? 'latin1' : 'utf8', eq + 1, i + len - 1);
    }
    i += len;
  }
  return out;
}

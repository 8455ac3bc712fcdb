/**
 * A push-style tar reader: feed it chunks as they arrive and it calls back
 * with each entry's header and, if asked, its content chunks. It never holds
 * more than one 512-byte block plus what a callback keeps, so an image tar
 * and the layer inside it can be read in one pass, the layer parsed while the
 * outer tar streams it. Understands ustar, PAX ('x', path/linkpath/size) and
 * GNU long names ('L', 'K'); verifies header checksums.
 */
import { MkimgError } from '../util/errors.js';

export type ScanType = 'file' | 'hardlink' | 'symlink' | 'dir' | 'other';

export interface ScanHeader {
  name: string; // as in the archive, without a leading "./"
  type: ScanType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkName?: string;
}

export interface ScanSink {
  data(chunk: Buffer): void;
  end(): void;
}

const BLOCK = 512;

function cstr(b: Buffer, off: number, len: number): string {
  const s = b.subarray(off, off + len);
  const z = s.indexOf(0);
  return (z === -1 ? s : s.subarray(0, z)).toString('utf8');
}

function num(b: Buffer, off: number, len: number): number {
  if (b[off] & 0x80) {
    // base-256 (GNU): big-endian, first byte's high bit is the marker
    let v = b[off] & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + b[off + i];
    return v;
  }
  const s = cstr(b, off, len).trim();
  return s === '' ? 0 : parseInt(s, 8);
}

function parsePaxRecords(buf: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < buf.length) {
    const sp = buf.indexOf(0x20, i);
    if (sp === -1) break;
    const len = parseInt(buf.subarray(i, sp).toString('ascii'), 10);
    if (!Number.isFinite(len) || len <= 0) break;
    const rec = buf.subarray(sp + 1, i + len - 1).toString('utf8'); // without trailing \n
    const eq = rec.indexOf('=');
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1);
    i += len;
  }
  return out;
}

export class TarScanner {
  private pending: Buffer[] = [];
  private pendingLen = 0;
  private remaining = 0; // content bytes left in the current entry
  private pad = 0; // padding bytes to skip after the content
  private sink: ScanSink | undefined;
  private meta: Buffer[] | undefined; // collecting a PAX/GNU meta entry
  private metaKind: string | undefined;
  private pax: Record<string, string> = {};
  private longName: string | undefined;
  private longLink: string | undefined;
  private zeroBlocks = 0;
  private done = false;
  private inEntry = false;
  /** Bytes consumed so far (for error messages). */
  offset = 0;

  constructor(
    private readonly label: string,
    private readonly onEntry: (h: ScanHeader) => ScanSink | undefined,
  ) {}

  get finished(): boolean {
    return this.done;
  }

  push(chunk: Buffer): void {
    let c = chunk;
    while (c.length > 0 && !this.done) {
      if (this.inEntry) {
        if (this.remaining > 0) {
          const n = Math.min(this.remaining, c.length);
          const part = c.subarray(0, n);
          if (this.meta) this.meta.push(part);
          else this.sink?.data(part);
          this.remaining -= n;
          this.offset += n;
          c = c.subarray(n);
          if (this.remaining > 0) return;
        }
        if (this.pad > 0) {
          const n = Math.min(this.pad, c.length);
          this.pad -= n;
          this.offset += n;
          c = c.subarray(n);
          if (this.pad > 0) return;
        }
        this.finishEntry();
        continue;
      }
      // collect a header block
      const need = BLOCK - this.pendingLen;
      const take = c.subarray(0, need);
      this.pending.push(take);
      this.pendingLen += take.length;
      c = c.subarray(take.length);
      if (this.pendingLen < BLOCK) return;
      const block = Buffer.concat(this.pending, BLOCK);
      this.pending = [];
      this.pendingLen = 0;
      this.header(block);
      this.offset += BLOCK;
    }
  }

  /** Call at end of input: a tar that stops inside an entry is truncated. */
  end(): void {
    if (this.inEntry || this.pendingLen > 0) {
      throw new MkimgError('integrity', `${this.label}: truncated tar (input ends inside an entry at byte ${this.offset})`, {
        hint: 'the file was cut short: copy or download it again',
      });
    }
  }

  private finishEntry(): void {
    this.inEntry = false;
    if (this.meta) {
      const body = Buffer.concat(this.meta);
      const kind = this.metaKind;
      this.meta = undefined;
      this.metaKind = undefined;
      if (kind === 'x') this.pax = { ...this.pax, ...parsePaxRecords(body) };
      else if (kind === 'L') this.longName = cstr(body, 0, body.length);
      else if (kind === 'K') this.longLink = cstr(body, 0, body.length);
      return;
    }
    this.sink?.end();
    this.sink = undefined;
  }

  private header(b: Buffer): void {
    if (b.every((x) => x === 0)) {
      if (++this.zeroBlocks >= 2) this.done = true;
      return;
    }
    this.zeroBlocks = 0;
    const stored = num(b, 148, 8);
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : b[i];
    if (sum !== stored) {
      throw new MkimgError('integrity', `${this.label}: bad tar header checksum at byte ${this.offset}`, {
        hint: 'the file is not a tar or is corrupt',
      });
    }
    const typeflag = String.fromCharCode(b[156] || 0x30);
    let size = num(b, 124, 12);
    if (typeflag === 'x' || typeflag === 'L' || typeflag === 'K' || typeflag === 'g') {
      this.inEntry = true;
      this.remaining = size;
      this.pad = (BLOCK - (size % BLOCK)) % BLOCK;
      this.meta = [];
      this.metaKind = typeflag; // 'g' (global PAX) is read and ignored
      if (size === 0) this.finishEntry();
      return;
    }
    let name = cstr(b, 0, 100);
    const magic = cstr(b, 257, 6);
    if (magic.startsWith('ustar')) {
      const prefix = cstr(b, 345, 155);
      if (prefix) name = prefix + '/' + name;
    }
    let linkName = cstr(b, 157, 100) || undefined;
    if (this.longName !== undefined) name = this.longName;
    if (this.longLink !== undefined) linkName = this.longLink;
    if (this.pax.path !== undefined) name = this.pax.path;
    if (this.pax.linkpath !== undefined) linkName = this.pax.linkpath;
    if (this.pax.size !== undefined) size = Number(this.pax.size);
    this.pax = {};
    this.longName = undefined;
    this.longLink = undefined;
    const type: ScanType =
      typeflag === '0' || typeflag === '7' ? 'file' : typeflag === '1' ? 'hardlink' : typeflag === '2' ? 'symlink' : typeflag === '5' ? 'dir' : 'other';
    if (type === 'hardlink' || type === 'symlink' || type === 'dir') size = 0; // no content, whatever the header says
    const h: ScanHeader = {
      name: name.replace(/^\.\//, ''),
      type,
      mode: num(b, 100, 8) & 0o7777,
      uid: num(b, 108, 8),
      gid: num(b, 116, 8),
      size,
      mtime: num(b, 136, 12),
      ...(linkName !== undefined && type !== 'file' && type !== 'dir' ? { linkName } : {}),
    };
    this.sink = this.onEntry(h);
    this.inEntry = true;
    this.remaining = size;
    this.pad = (BLOCK - (size % BLOCK)) % BLOCK;
    if (size === 0) this.finishEntry();
  }
}

/**
 * Streaming reader of the `ar` container that wraps a .deb:
 *   "!<arch>\n", then per member a 60-byte header
 *   name[16] mtime[12] uid[6] gid[6] mode[8] (octal) size[10] fmag[2]="`\n",
 *   then `size` bytes, then one "\n" pad byte when size is odd.
 * GNU ar spells names "name/"; both spellings are accepted. Symbol tables and
 * long-name tables are reported as members named "/" and "//" (a .deb has none).
 */
import { MkimgError } from '../../util/errors.js';
import type { ByteReader } from './bytes.js';

export const AR_MAGIC = '!<arch>\n';

export interface ArMember {
  name: string;
  size: number;
  mtime: number;
  uid: number;
  gid: number;
  mode: number;
  /** Offset of the member's data in the archive. */
  offset: number;
}

export class ArReader {
  private started = false;
  private current: ArMember | null = null;
  private consumed = 0;
  private bodyOpen = false;

  /** `label` names the archive (the .deb path) in every error. */
  constructor(
    private readonly r: ByteReader,
    private readonly label: string,
  ) {}

  /** The next member's header, or null at the end of the archive. Skips whatever is left of the previous member. */
  async next(): Promise<ArMember | null> {
    if (!this.started) {
      this.started = true;
      const magic = await this.r.read(AR_MAGIC.length);
      if (magic.toString('latin1') !== AR_MAGIC) {
        throw new MkimgError('input', `${this.label}: not a Debian package: bad ar magic (expected "!<arch>\\n")`, {
          hint: 'the file is not a .deb or is corrupt; delete it and fetch it again',
        });
      }
    }
    await this.finishCurrent();
    if (await this.r.atEnd()) return null;
    const h = await this.r.readExact(60, 'an ar member header');
    if (h[58] !== 0x60 || h[59] !== 0x0a) {
      throw new MkimgError(
        'input',
        `${this.label}: corrupt ar member header at offset ${this.r.offset - 60} (bad terminator)`,
        {
          hint: 'the file is corrupt; delete it and fetch it again',
        },
      );
    }
    let name = h.subarray(0, 16).toString('latin1').replace(/ +$/, '');
    if (name.length > 1 && name !== '//' && name.endsWith('/')) name = name.slice(0, -1);
    const size = field(h, 48, 10, 10, 'size', this.label);
    const m: ArMember = {
      name,
      size,
      mtime: field(h, 16, 12, 10, 'mtime', this.label),
      uid: field(h, 28, 6, 10, 'uid', this.label),
      gid: field(h, 34, 6, 10, 'gid', this.label),
      mode: field(h, 40, 8, 8, 'mode', this.label),
      offset: this.r.offset,
    };
    this.current = m;
    this.consumed = 0;
    return m;
  }

  /** The current member's data, streamed. May be called once per member. */
  body(): AsyncGenerator<Buffer> {
    const m = this.current;
    if (!m || this.bodyOpen) throw new Error('ArReader.body(): no current member');
    this.bodyOpen = true;
    return this.r.chunks(m.size - this.consumed, `ar member ${m.name}`, (n) => {
      this.consumed += n;
    });
  }

  /** The current member's data, whole. */
  async readBody(): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const c of this.body()) parts.push(c);
    return Buffer.concat(parts);
  }

  private async finishCurrent(): Promise<void> {
    const m = this.current;
    if (!m) return;
    this.current = null;
    this.bodyOpen = false;
    const left = m.size - this.consumed;
    if (left > 0) await this.r.skip(left, `ar member ${m.name}`);
    if (m.size % 2 === 1) {
      const pad = await this.r.read(1); // a missing final pad byte is tolerated, as ar does
      if (pad.length === 1 && pad[0] !== 0x0a) {
        throw new MkimgError('input', `${this.label}: corrupt ar archive: bad padding after member ${m.name}`);
      }
    }
  }
}

function field(h: Buffer, off: number, len: number, radix: 8 | 10, what: string, label: string): number {
  const s = h
    .subarray(off, off + len)
    .toString('latin1')
    .trim();
  if (s === '') return 0;
  const ok = radix === 10 ? /^[0-9]+$/.test(s) : /^[0-7]+$/.test(s);
  if (!ok) throw new MkimgError('input', `${label}: corrupt ar member header: ${what} field "${s}" is not a number`);
  return parseInt(s, radix);
}

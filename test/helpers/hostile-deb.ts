/**
 * Byte-level writers for crafting .deb files the way an attacker would:
 * a tar writer that writes any name, type and PAX record verbatim, and an ar
 * writer that writes members in any order. Used by test/deb and test/stage.
 */
import { gzipSync } from 'node:zlib';
import { xz } from '@napi-rs/lzma';
import { writeFileSync } from 'node:fs';

export interface TarSpec {
  name: string;
  /** tar typeflag: '0' file, '1' hardlink, '2' symlink, '3' char, '4' block, '5' dir, '6' fifo */
  type?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  linkname?: string;
  content?: Buffer | string;
  pax?: Record<string, Buffer | string>;
  devmajor?: number;
  devminor?: number;
}

function octal(n: number, len: number): string {
  return n.toString(8).padStart(len - 1, '0') + '\0';
}

function header(s: TarSpec & { size: number; type: string }): Buffer {
  const h = Buffer.alloc(512);
  h.write(s.name, 0, 100, 'utf8');
  h.write(octal(s.mode ?? (s.type === '5' ? 0o755 : s.type === '2' ? 0o777 : 0o644), 8), 100, 'latin1');
  h.write(octal(s.uid ?? 0, 8), 108, 'latin1');
  h.write(octal(s.gid ?? 0, 8), 116, 'latin1');
  h.write(octal(s.size, 12), 124, 'latin1');
  h.write(octal(1700000000, 12), 136, 'latin1');
  h.write(s.type, 156, 'latin1');
  h.write(s.linkname ?? '', 157, 100, 'utf8');
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  h.write('root', 265, 'latin1');
  h.write('root', 297, 'latin1');
  h.write(octal(s.devmajor ?? 0, 8), 329, 'latin1');
  h.write(octal(s.devminor ?? 0, 8), 337, 'latin1');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return h;
}

function pad(b: Buffer): Buffer {
  const r = b.length % 512;
  return r === 0 ? b : Buffer.concat([b, Buffer.alloc(512 - r)]);
}

function paxRecords(pax: Record<string, Buffer | string>): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(pax)) {
    const body = Buffer.concat([Buffer.from(` ${k}=`), Buffer.isBuffer(v) ? v : Buffer.from(v), Buffer.from('\n')]);
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    parts.push(Buffer.concat([Buffer.from(String(len)), body]));
  }
  return Buffer.concat(parts);
}

export function tarBytes(entries: TarSpec[], opts: { endBlocks?: boolean } = {}): Buffer {
  const out: Buffer[] = [];
  for (const e of entries) {
    const type = e.type ?? '0';
    const content =
      e.content === undefined ? Buffer.alloc(0) : Buffer.isBuffer(e.content) ? e.content : Buffer.from(e.content);
    if (e.pax) {
      const rec = paxRecords(e.pax);
      out.push(header({ name: 'PaxHeader', type: 'x', size: rec.length }), pad(rec));
    }
    out.push(header({ ...e, type, size: type === '0' ? content.length : 0 }));
    if (type === '0' && content.length) out.push(pad(content));
  }
  if (opts.endBlocks !== false) out.push(Buffer.alloc(1024));
  return Buffer.concat(out);
}

export interface ArMemberSpec {
  name: string;
  data: Buffer;
}

export function arBytes(members: ArMemberSpec[]): Buffer {
  const out: Buffer[] = [Buffer.from('!<arch>\n')];
  for (const m of members) {
    const h = Buffer.alloc(60, 0x20);
    h.write(m.name, 0, 16, 'latin1');
    h.write('0', 16, 'latin1');
    h.write('0', 28, 'latin1');
    h.write('0', 34, 'latin1');
    h.write('100644', 40, 'latin1');
    h.write(String(m.data.length), 48, 'latin1');
    h.write('`\n', 58, 'latin1');
    out.push(h, m.data);
    if (m.data.length % 2) out.push(Buffer.from('\n'));
  }
  return Buffer.concat(out);
}

export function controlText(name: string, version = '1.0', arch = 'amd64'): string {
  return `Package: ${name}\nVersion: ${version}\nArchitecture: ${arch}\nMaintainer: Test <test@example.invalid>\nDescription: crafted test package\n`;
}

/** A .deb (uncompressed or gzip members) with the given data entries. */
export function debBytes(opts: {
  name?: string;
  data: TarSpec[];
  gzip?: boolean;
  /** Replace the member list entirely (for order tests); receives the three standard members. */
  members?: (std: { binary: ArMemberSpec; control: ArMemberSpec; data: ArMemberSpec }) => ArMemberSpec[];
}): Buffer {
  const ctl = tarBytes([
    { name: './', type: '5' },
    { name: './control', content: controlText(opts.name ?? 'evil') },
  ]);
  const data = tarBytes(opts.data);
  const z = opts.gzip ? (b: Buffer) => gzipSync(b) : (b: Buffer) => b;
  const ext = opts.gzip ? '.gz' : '';
  const std = {
    binary: { name: 'debian-binary', data: Buffer.from('2.0\n') },
    control: { name: 'control.tar' + ext, data: z(ctl) },
    data: { name: 'data.tar' + ext, data: z(data) },
  };
  return arBytes(opts.members ? opts.members(std) : [std.binary, std.control, std.data]);
}

export function writeDeb(path: string, opts: Parameters<typeof debBytes>[0]): Buffer {
  const b = debBytes(opts);
  writeFileSync(path, b);
  return b;
}

/** A .deb named `name` whose data.tar.xz is cut in half: the xz stream ends early (one file, ./c, inside). */
export function truncatedXzDebBytes(name: string): Buffer {
  return debBytes({
    name,
    data: [{ name: './c', content: 'c'.repeat(5000) }],
    members: (s) => {
      const z = xz.compressSync(s.data.data);
      return [s.binary, s.control, { name: 'data.tar.xz', data: z.subarray(0, z.length >> 1) }];
    },
  });
}

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync, chmodSync, linkSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { TempDir } from '../helpers/pgp.js';
import { parsePax, TarFormatError, TarParser, type TarHeader } from '../../src/image/tar-reader.js';
import { encodeHeader } from '../../src/image/tar-header.js';

let dir: TempDir;
const long = 'd'.repeat(60) + '/' + 'e'.repeat(60) + '/' + 'f'.repeat(120) + '.txt';
// a second tree, named member by member (no "./"), with a hard link
const longDir = 'd'.repeat(60) + '/' + 'e'.repeat(70);
const longFile = `${longDir}/${'f'.repeat(90)}.txt`;

beforeAll(() => {
  dir = new TempDir('mkimg-tar-');
  const root = join(dir.path, 'root');
  mkdirSync(join(root, long.split('/').slice(0, 2).join('/')), { recursive: true });
  writeFileSync(join(root, long), 'long name\n');
  writeFileSync(join(root, 'small'), 'x'.repeat(1000));
  chmodSync(join(root, 'small'), 0o4755);
  symlinkSync('t'.repeat(150), join(root, 'link'));
  writeFileSync(join(root, 'empty'), '');

  const src = join(dir.path, 'src');
  mkdirSync(join(src, longDir), { recursive: true });
  writeFileSync(join(src, longFile), 'long name content\n');
  writeFileSync(join(src, 'small'), 'x'.repeat(1000));
  symlinkSync('/' + 't'.repeat(150), join(src, 'longlink'));
  linkSync(join(src, 'small'), join(src, 'hard'));
});
afterAll(() => dir?.cleanup());

function parse(bytes: Buffer, chunk: number): { headers: TarHeader[]; sums: Record<string, string> } {
  const headers: TarHeader[] = [];
  const sums: Record<string, string> = {};
  const p = new TarParser((h) => {
    headers.push(h);
    const hash = createHash('sha256');
    return { write: (c) => void hash.update(c), end: () => void (sums[h.name] = hash.digest('hex')) };
  });
  for (let i = 0; i < bytes.length; i += chunk) p.push(bytes.subarray(i, i + chunk));
  p.end();
  expect(p.ended).toBe(true);
  return { headers, sums };
}

/** Headers and the text content of regular files, the bytes fed in `chunk`-sized pieces. */
function scan(bytes: Buffer, chunk: number): { headers: TarHeader[]; contents: Map<string, string> } {
  const headers: TarHeader[] = [];
  const contents = new Map<string, string>();
  const p = new TarParser((h) => {
    headers.push(h);
    if (h.type !== '0') return undefined;
    const parts: Buffer[] = [];
    return {
      write: (b) => parts.push(Buffer.from(b)),
      end: () => contents.set(h.name, Buffer.concat(parts).toString('utf8')),
    };
  });
  for (let i = 0; i < bytes.length; i += chunk) p.push(bytes.subarray(i, i + chunk));
  p.end();
  expect(p.ended).toBe(true);
  return { headers, contents };
}

describe('tar reader', () => {
  for (const format of ['pax', 'gnu', 'ustar']) {
    it(`reads GNU tar --format=${format}: long names, link targets, modes; any chunking`, () => {
      const out = join(dir.path, `${format}.tar`);
      const args = [
        '--format',
        format,
        '--sort=name',
        '--owner=0',
        '--group=0',
        '--numeric-owner',
        '--mtime=@1700000000',
        '-C',
        join(dir.path, 'root'),
        '-cf',
        out,
        '.',
      ];
      try {
        execFileSync('tar', args, { stdio: 'pipe' });
      } catch (e) {
        // ustar cannot store a 150-byte link target or a 243-byte name: tar says so
        expect(format).toBe('ustar');
        expect(String((e as { stderr?: Buffer }).stderr)).toMatch(/too long/);
        return;
      }
      const bytes = readFileSync(out);
      const whole = parse(bytes, bytes.length);
      const bytewise = parse(bytes, 7);
      expect(bytewise).toEqual(whole);
      const by = Object.fromEntries(whole.headers.map((h) => [h.name, h]));
      expect(by[`./${long}`]).toMatchObject({ type: '0', size: 10, mtime: 1700000000, uid: 0 });
      expect(whole.sums[`./${long}`]).toBe(createHash('sha256').update('long name\n').digest('hex'));
      expect(by['./link']).toMatchObject({ type: '2', linkname: 't'.repeat(150) });
      expect(by['./small'].mode & 0o7777).toBe(0o4755);
      expect(by['./empty']).toMatchObject({ type: '0', size: 0 });
      expect(by['./']).toMatchObject({ type: '5' });
      const listed = execFileSync('tar', ['-tf', out], { encoding: 'utf8' }).trim().split('\n');
      expect(whole.headers.map((h) => h.name)).toEqual(listed);
      if (format === 'pax') expect(by[`./${long}`].pax.path).toBe(`./${long}`);
    });
  }

  for (const format of ['pax', 'gnu', 'ustar'] as const) {
    it(`reads GNU tar --format=${format} archives in any chunking (1 byte to 1 MiB), like tar -t: hard links, owners`, () => {
      const out = join(dir.path, `members-${format}.tar`);
      // ustar cannot hold the 150-byte link target: leave it out there
      const members = format === 'ustar' ? ['small', 'hard', longFile] : ['small', 'hard', 'longlink', longFile];
      execFileSync(
        'tar',
        [
          `--format=${format}`,
          '--owner=7',
          '--group=9',
          '--numeric-owner',
          '-cf',
          out,
          '-C',
          join(dir.path, 'src'),
          ...members,
        ],
        { stdio: 'pipe' },
      );
      const listing = execFileSync('tar', ['-tf', out], { encoding: 'utf8' }).trim().split('\n');
      const bytes = readFileSync(out);
      for (const chunk of [1, 7, 512, 1 << 20]) {
        const { headers, contents } = scan(bytes, chunk);
        expect(headers.map((h) => h.name)).toEqual(listing);
        expect(contents.get(longFile)).toBe('long name content\n');
        expect(contents.get('small')).toBe('x'.repeat(1000));
        const hard = headers.find((h) => h.name === 'hard')!;
        expect(hard).toMatchObject({ type: '1', linkname: 'small', uid: 7, gid: 9, size: 0 });
        if (format !== 'ustar')
          expect(headers.find((h) => h.name === 'longlink')).toMatchObject({
            type: '2',
            linkname: '/' + 't'.repeat(150),
          });
      }
    });
  }

  it('truncation and corruption are errors with offsets', () => {
    const bytes = readFileSync(join(dir.path, 'pax.tar'));
    expect(() => parse(bytes.subarray(0, 1500), 512)).toThrow(TarFormatError);
    const bad = Buffer.from(bytes);
    bad[0] ^= 1;
    expect(() => parse(bad, 4096)).toThrow(/bad checksum/);
  });

  it('reports truncation inside an entry and bad checksums', () => {
    const out = join(dir.path, 'trunc.tar');
    execFileSync('tar', ['--format=pax', '-cf', out, '-C', join(dir.path, 'src'), 'small'], { stdio: 'pipe' });
    const buf = readFileSync(out);
    const t = new TarParser(() => undefined);
    t.push(buf.subarray(0, 700));
    expect(() => t.end()).toThrow(
      expect.objectContaining({ name: 'TarFormatError', truncated: true, message: expect.stringMatching(/truncated/) }),
    );
    const bad = Buffer.from(buf);
    bad[10] ^= 0x01;
    expect(() => new TarParser(() => undefined).push(bad)).toThrow(/bad checksum/);
  });

  it('reads base-256 numbers and PAX uid/gid/size beyond the octal fields', () => {
    const uid = 0o7777777 + 5; // too big for the octal field: mkimg's writer puts it in a PAX record
    const mkimg = Buffer.concat([
      encodeHeader({ name: 'big', type: 'file', mode: 0o644, uid, gid: uid + 1, size: 3, mtime: 1 }),
      Buffer.from('abc'),
      Buffer.alloc(509),
      Buffer.alloc(1024),
    ]);
    const { headers, contents } = scan(mkimg, 1);
    expect(headers[0]).toMatchObject({
      name: 'big',
      uid,
      gid: uid + 1,
      size: 3,
      pax: { uid: String(uid), gid: String(uid + 1) },
    });
    expect(contents.get('big')).toBe('abc');
    // the same entry with a GNU base-256 uid field and no PAX record
    const plain = encodeHeader({ name: 'b256', type: 'file', mode: 0o644, uid: 1, gid: 2, size: 0, mtime: 1 });
    plain.fill(0, 108, 116);
    plain[108] = 0x80;
    plain.writeUIntBE(uid, 110, 6);
    plain.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of plain) sum += b;
    plain.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
    const b256 = scan(Buffer.concat([plain, Buffer.alloc(1024)]), 512);
    expect(b256.headers[0]).toMatchObject({ name: 'b256', uid, gid: 2 });
  });

  it('skip() passes over unread bodies and padding, as a seeking reader needs', () => {
    const out = join(dir.path, 'seek.tar');
    execFileSync(
      'tar',
      ['--format=gnu', '-cf', out, '-C', join(dir.path, 'src'), 'small', 'hard', 'longlink', longFile],
      { stdio: 'pipe' },
    );
    const bytes = readFileSync(out);
    const offsets: Record<string, number> = {};
    const p = new TarParser((h) => {
      offsets[h.name] = p.bytesConsumed;
      return undefined;
    });
    let pos = 0;
    while (pos < bytes.length && !p.ended) {
      p.push(bytes.subarray(pos, pos + 512));
      pos += 512 + p.skip();
    }
    p.end();
    expect(Object.keys(offsets)).toEqual(scan(bytes, bytes.length).headers.map((h) => h.name));
    expect(bytes.subarray(offsets[longFile], offsets[longFile] + 18).toString()).toBe('long name content\n');
    expect(bytes.subarray(offsets.small, offsets.small + 1000).toString()).toBe('x'.repeat(1000));
  });
});

describe('pax values', () => {
  it('keeps binary extended attributes byte for byte, so different capabilities never read alike', () => {
    const cap = (last: number) => Buffer.from([0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0xff, last]);
    const a = parsePax(paxData('SCHILY.xattr.security.capability', cap(0xfe)));
    const b = parsePax(paxData('SCHILY.xattr.security.capability', cap(0xfd)));
    expect(Buffer.from(a['SCHILY.xattr.security.capability']!, 'latin1')).toEqual(cap(0xfe));
    expect(a['SCHILY.xattr.security.capability']).not.toBe(b['SCHILY.xattr.security.capability']);
    // Text records stay UTF-8.
    expect(parsePax(paxData('path', Buffer.from('usr/share/zoneinfo/América', 'utf8'))).path).toBe(
      'usr/share/zoneinfo/América',
    );
  });
});

function paxData(key: string, value: Buffer): Buffer {
  const body = Buffer.byteLength(key) + value.length + 3;
  let len = body + String(body).length;
  if (String(len).length !== String(body).length) len = body + String(len).length;
  return Buffer.concat([Buffer.from(`${len} ${key}=`), value, Buffer.from('\n')]);
}

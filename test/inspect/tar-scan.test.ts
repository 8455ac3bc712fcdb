import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, linkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TarScanner, type ScanHeader } from '../../src/inspect/tar-scan.js';
import { run } from '../helpers/system.js';

const work = mkdtempSync(join(tmpdir(), 'mkimg-tarscan-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const longDir = 'd'.repeat(60) + '/' + 'e'.repeat(70);
const longFile = `${longDir}/${'f'.repeat(90)}.txt`;
const src = join(work, 'src');
mkdirSync(join(src, longDir), { recursive: true });
writeFileSync(join(src, longFile), 'long name content\n');
writeFileSync(join(src, 'small'), 'x'.repeat(1000));
symlinkSync('/' + 't'.repeat(150), join(src, 'longlink'));
linkSync(join(src, 'small'), join(src, 'hard'));

function scanFile(path: string, chunk: number): { headers: ScanHeader[]; contents: Map<string, string> } {
  const headers: ScanHeader[] = [];
  const contents = new Map<string, string>();
  const s = new TarScanner(path, (h) => {
    headers.push(h);
    if (h.type !== 'file') return undefined;
    const parts: Buffer[] = [];
    return { data: (b) => parts.push(b), end: () => contents.set(h.name, Buffer.concat(parts).toString('utf8')) };
  });
  const buf = readFileSync(path);
  for (let i = 0; i < buf.length; i += chunk) s.push(buf.subarray(i, i + chunk));
  s.end();
  expect(s.finished).toBe(true);
  return { headers, contents };
}

describe('TarScanner', () => {
  for (const format of ['pax', 'gnu', 'ustar'] as const) {
    it(`reads GNU tar --format=${format} archives in any chunking, like tar -t`, () => {
      const out = join(work, `${format}.tar`);
      // ustar cannot hold the 150-byte link target: leave it out there
      const members = format === 'ustar' ? ['small', 'hard', longFile] : ['small', 'hard', 'longlink', longFile];
      run('tar', [`--format=${format}`, '--owner=7', '--group=9', '--numeric-owner', '-cf', out, '-C', src, ...members]);
      const listing = run('tar', ['-tf', out]).trim().split('\n');
      for (const chunk of [1, 7, 512, 1 << 20]) {
        const { headers, contents } = scanFile(out, chunk);
        expect(headers.map((h) => h.name)).toEqual(listing);
        expect(contents.get(longFile)).toBe('long name content\n');
        expect(contents.get('small')).toBe('x'.repeat(1000));
        const hard = headers.find((h) => h.name === 'hard')!;
        expect(hard).toMatchObject({ type: 'hardlink', linkName: 'small', uid: 7, gid: 9, size: 0 });
        if (format !== 'ustar') expect(headers.find((h) => h.name === 'longlink')).toMatchObject({ type: 'symlink', linkName: '/' + 't'.repeat(150) });
      }
    });
  }

  it('reports truncation and bad checksums as integrity errors', () => {
    const out = join(work, 'trunc.tar');
    run('tar', ['--format=pax', '-cf', out, '-C', src, 'small']);
    const buf = readFileSync(out);
    const t = new TarScanner('cut.tar', () => undefined);
    t.push(buf.subarray(0, 700));
    expect(() => t.end()).toThrow(/truncated tar/);
    const bad = Buffer.from(buf);
    bad[10] ^= 0x01;
    expect(() => new TarScanner('bad.tar', () => undefined).push(bad)).toThrow(/bad tar header checksum/);
  });
});

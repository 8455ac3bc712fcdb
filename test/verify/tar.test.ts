import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { TempDir } from '../helpers/pgp.js';
import { TarFormatError, TarParser, type TarHeader } from '../../src/verify/tar.js';

let dir: TempDir;
const long = 'd'.repeat(60) + '/' + 'e'.repeat(60) + '/' + 'f'.repeat(120) + '.txt';

beforeAll(() => {
  dir = new TempDir('mkimg-tar-');
  const root = join(dir.path, 'root');
  mkdirSync(join(root, long.split('/').slice(0, 2).join('/')), { recursive: true });
  writeFileSync(join(root, long), 'long name\n');
  writeFileSync(join(root, 'small'), 'x'.repeat(1000));
  chmodSync(join(root, 'small'), 0o4755);
  symlinkSync('t'.repeat(150), join(root, 'link'));
  writeFileSync(join(root, 'empty'), '');
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
  return { headers, sums };
}

describe('tar reader', () => {
  for (const format of ['pax', 'gnu', 'ustar']) {
    it(`reads GNU tar --format=${format}: long names, link targets, modes; any chunking`, () => {
      const out = join(dir.path, `${format}.tar`);
      const args = ['--format', format, '--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@1700000000', '-C', join(dir.path, 'root'), '-cf', out, '.'];
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

  it('truncation and corruption are errors with offsets', () => {
    const bytes = readFileSync(join(dir.path, 'pax.tar'));
    expect(() => parse(bytes.subarray(0, 1500), 512)).toThrow(TarFormatError);
    const bad = Buffer.from(bytes);
    bad[0] ^= 1;
    expect(() => parse(bad, 4096)).toThrow(/bad checksum/);
  });
});

/**
 * Decompression bombs: a small .deb whose data or control archive expands to
 * far more than it may. Each is refused at its bound (SPEC §4 "Limits") with
 * one input error naming the package, for every compression, in the streamed
 * reader and the in-memory one, by `mkimg lock` (exit 4, one line) too.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readDeb, readDebBuffer, dataLimit } from '../../src/debian/deb/deb.js';
import { MkimgError } from '../../src/util/errors.js';
import { sha256Hex } from '../../src/util/digest.js';
import { tempDir } from '../helpers/debbuild.js';
import { arBytes, tarBytes } from '../helpers/hostile-deb.js';
import { compressedZeroTar } from '../helpers/bombs.js';
import { mkimg } from '../helpers/cli.js';

let dir: string;
beforeAll(() => {
  dir = tempDir('bombs');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const BOMB = 100 << 20; // past the 64 MiB slack and the control limit, quick to make

function control(installedSize?: number): Buffer {
  return tarBytes([
    { name: './', type: '5' },
    {
      name: './control',
      content: `Package: bomb\nVersion: 1.0\nArchitecture: amd64\n${installedSize !== undefined ? `Installed-Size: ${installedSize}\n` : ''}Maintainer: T <t@example.invalid>\nDescription: bomb\n`,
    },
  ]);
}

function dataBomb(kind: 'xz' | 'gzip'): Buffer {
  return arBytes([
    { name: 'debian-binary', data: Buffer.from('2.0\n') },
    { name: 'control.tar', data: control(10) },
    { name: `data.tar.${kind === 'xz' ? 'xz' : 'gz'}`, data: compressedZeroTar('./usr/share/big', BOMB, kind) },
  ]);
}

async function drain(path: string, bytes: Buffer, inMemory: boolean): Promise<unknown> {
  try {
    const d = inMemory ? await readDebBuffer(path, bytes) : await readDeb(path);
    for await (const e of d.entries()) for await (const _ of e.body);
    return null;
  } catch (e) {
    return e;
  }
}

describe('decompression bombs', () => {
  test('the bound comes from Installed-Size, with a ceiling', () => {
    expect(dataLimit('p', '10').maxBytes).toBe(10 * 1024 * 2 + (64 << 20));
    expect(dataLimit('p', undefined).maxBytes).toBe(16 * 2 ** 30);
    expect(dataLimit('p', '999999999999').maxBytes).toBe(16 * 2 ** 30);
    expect(dataLimit('p', 'x').why).toMatch(/declares no Installed-Size/);
  });

  for (const kind of ['xz', 'gzip'] as const) {
    test(`a ${kind} data archive past its package's bound is refused, streamed and in memory`, async () => {
      const bytes = dataBomb(kind);
      expect(bytes.length).toBeLessThan(400 << 10);
      const path = join(dir, `bomb-${kind}.deb`);
      writeFileSync(path, bytes);
      for (const inMemory of [false, true]) {
        const e = await drain(path, bytes, inMemory);
        expect(e).toBeInstanceOf(MkimgError);
        expect((e as MkimgError).kind).toBe('input');
        expect((e as MkimgError).message).toMatch(
          /data\.tar\.(xz|gz): decompresses to more than 64\.0 MiB \(package bomb declares Installed-Size 10 KiB/,
        );
      }
    });
  }

  test('a control archive bomb is refused at the control limit', async () => {
    const bytes = arBytes([
      { name: 'debian-binary', data: Buffer.from('2.0\n') },
      { name: 'control.tar.gz', data: compressedZeroTar('./control', BOMB, 'gzip') },
      { name: 'data.tar', data: tarBytes([{ name: './', type: '5' }]) },
    ]);
    const path = join(dir, 'control-bomb.deb');
    writeFileSync(path, bytes);
    const e = await readDeb(path).then(
      () => null,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(MkimgError);
    expect((e as MkimgError).message).toMatch(
      /control\.tar\.gz: decompresses to more than 64\.0 MiB \(the limit for a control archive/,
    );
  });

  test('a package within its bound still reads (the bound is not the exact size)', async () => {
    const bytes = arBytes([
      { name: 'debian-binary', data: Buffer.from('2.0\n') },
      { name: 'control.tar', data: control(1) },
      { name: 'data.tar.xz', data: compressedZeroTar('./usr/share/f', 4 << 20, 'xz') },
    ]);
    const path = join(dir, 'ok.deb');
    writeFileSync(path, bytes);
    expect(await drain(path, bytes, false)).toBe(null);
    expect(await drain(path, bytes, true)).toBe(null);
  });

  test('mkimg build of a project with a bomb: exit 4, one line naming the package, no staging root, no output', () => {
    const proj = join(dir, 'proj');
    mkdirSync(proj);
    const bytes = dataBomb('xz');
    writeFileSync(join(proj, 'bomb.deb'), bytes);
    const m = join(proj, 'manifest.yaml');
    writeFileSync(
      m,
      `apiVersion: mkimg/v1\nname: test/bomb\ntag: "1"\nsourceDateEpoch: 1700000000\npackages:\n  - deb: bomb.deb\n    sha256: "${sha256Hex(bytes)}"\nminimize: false\n`,
    );
    const env = { ...process.env, XDG_CACHE_HOME: join(dir, 'cache') };
    expect(mkimg(['lock', m], { env }).code).toBe(0);
    const work = join(dir, 'work');
    const out = join(dir, 'out');
    mkdirSync(work);
    mkdirSync(out);
    const r = mkimg(['build', m, '-o', join(out, 'image.tar'), '--work-dir', work], { env });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(
      /^mkimg: error: .*bomb\.deb: data\.tar\.xz: decompresses to more than 64\.0 MiB \(package bomb declares/,
    );
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.stderr.split('\n').filter((l) => l.startsWith('mkimg: error')).length).toBe(1);
    expect(readdirSync(work)).toEqual([]);
    expect(readdirSync(out)).toEqual([]);
  });
});

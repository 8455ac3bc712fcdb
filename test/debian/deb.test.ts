import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { xz } from '@napi-rs/lzma';
import { readDeb, readDebControl, parseControlStanza } from '../../src/debian/deb/deb.js';
import { ArReader } from '../../src/debian/deb/ar.js';
import { ByteReader } from '../../src/debian/deb/bytes.js';
import { readTar } from '../../src/debian/deb/tar.js';
import { MkimgError } from '../../src/util/errors.js';
import { buildDeb, tempDir, type TreeItem } from '../helpers/debbuild.js';
import { arBytes, controlText, debBytes, tarBytes } from '../helpers/hostile-deb.js';

let dir: string;
beforeAll(() => {
  dir = tempDir('deb');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function listEntries(path: string) {
  const d = await readDeb(path);
  const out: {
    name: string;
    type: string;
    mode: number;
    uid: number;
    gid: number;
    linkname: string;
    content: string;
  }[] = [];
  for await (const e of d.entries()) {
    const parts: Buffer[] = [];
    for await (const c of e.body) parts.push(c);
    out.push({
      name: e.name,
      type: e.type,
      mode: e.mode,
      uid: e.uid,
      gid: e.gid,
      linkname: e.linkname,
      content: Buffer.concat(parts).toString(),
    });
  }
  return { deb: d, entries: out };
}

async function expectInputError(p: Promise<unknown>, re: RegExp): Promise<MkimgError> {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(MkimgError);
  expect((e as MkimgError).kind).toBe('input');
  expect((e as MkimgError).message).toMatch(re);
  return e as MkimgError;
}

const items: TreeItem[] = [
  { path: 'usr/bin/tool', type: 'file', content: '#!/bin/sh\necho tool\n', mode: 0o755 },
  { path: 'usr/bin/suid', type: 'file', content: 'x', mode: 0o4755 },
  { path: 'etc/app/conf', type: 'file', content: 'key=value\n', mode: 0o640, uid: 0, gid: 42 },
  { path: 'var/lib/app', type: 'dir', mode: 0o750, uid: 100, gid: 101 },
  { path: 'usr/bin/alias', type: 'symlink', target: 'tool' },
  { path: 'usr/bin/tool2', type: 'hardlink', target: 'usr/bin/tool' },
  { path: 'usr/share/doc/app/big', type: 'file', content: Buffer.alloc(300_000, 7) },
];

describe('readDeb on dpkg-deb packages', () => {
  for (const z of ['xz', 'gzip', 'zstd', 'none'] as const) {
    test(`-Z${z}: members, control, entries, modes, owners, links`, async () => {
      const b = buildDeb(dir, { name: `app-${z}`, items, compression: z });
      const { deb, entries } = await listEntries(b.path);
      expect(deb.formatVersion).toBe('2.0\n');
      expect(deb.dataMember).toBe(
        z === 'none' ? 'data.tar' : `data.tar.${z === 'gzip' ? 'gz' : z === 'zstd' ? 'zst' : 'xz'}`,
      );
      expect(deb.dataCompression).toBe(z);
      expect(parseControlStanza(deb.control.control)).toMatchObject({
        Package: `app-${z}`,
        Version: '1.0',
        Architecture: 'amd64',
      });
      const by = new Map(entries.map((e) => [e.name, e]));
      expect(by.get('./usr/bin/tool')).toMatchObject({
        type: 'file',
        mode: 0o755,
        uid: 0,
        content: '#!/bin/sh\necho tool\n',
      });
      expect(by.get('./usr/bin/suid')).toMatchObject({ type: 'file', mode: 0o4755 });
      expect(by.get('./etc/app/conf')).toMatchObject({ type: 'file', mode: 0o640, uid: 0, gid: 42 });
      expect(by.get('./var/lib/app/')).toMatchObject({ type: 'dir', mode: 0o750, uid: 100, gid: 101 });
      expect(by.get('./usr/bin/alias')).toMatchObject({ type: 'symlink', linkname: 'tool' });
      const links = entries.filter((e) => e.name === './usr/bin/tool' || e.name === './usr/bin/tool2');
      expect(links.map((e) => e.type).sort()).toEqual(['file', 'hardlink']);
      expect(links.find((e) => e.type === 'hardlink')!.linkname).toMatch(/^\.\/usr\/bin\/tool2?$/);
      expect(by.get('./usr/share/doc/app/big')!.content.length).toBe(300_000);
    });
  }

  test('--root-owner-group gives 0:0 everywhere', async () => {
    const b = buildDeb(dir, { name: 'rootowned', items, compression: 'gzip', rootOwner: true });
    const { entries } = await listEntries(b.path);
    expect(entries.every((e) => e.uid === 0 && e.gid === 0)).toBe(true);
    expect(entries.length).toBeGreaterThan(8);
  });

  test('control archive: md5sums and maintainer scripts are read, not run', async () => {
    const marker = join(dir, 'postinst-ran');
    const b = buildDeb(dir, {
      name: 'scripts',
      items: [{ path: 'usr/bin/x', type: 'file', content: 'x' }],
      extraControl: {
        postinst: `#!/bin/sh\ntouch ${marker}\n`,
        md5sums: '9dd4e461268c8034f5c8564e155c67a6  usr/bin/x\n',
      },
    });
    const c = await readDebControl(b.path);
    expect(c.files.get('postinst')!.toString()).toContain(marker);
    expect(c.md5sums).toMatch(/^[0-9a-f]{32} {2}usr\/bin\/x\n$/);
    expect(() => readFileSync(marker)).toThrow();
  });
});

describe('ar and member rules', () => {
  test('bad magic names the file', async () => {
    const p = join(dir, 'notadeb.deb');
    writeFileSync(p, 'hello, this is not an ar archive');
    await expectInputError(readDeb(p), new RegExp(`${p.replace(/[.]/g, '\\.')}: not a Debian package: bad ar magic`));
  });

  test('truncated archive: in the header, in the control member, in the data member', async () => {
    const full = debBytes({ data: [{ name: './usr/bin/x', content: Buffer.alloc(5000, 1) }] });
    for (const cut of [30, 200, full.length - 3000]) {
      const p = join(dir, `trunc-${cut}.deb`);
      writeFileSync(p, full.subarray(0, cut));
      await expectInputError(
        (async () => {
          const d = await readDeb(p);
          for await (const e of d.entries()) for await (const _ of e.body) void _;
        })(),
        /truncated/,
      );
    }
  });

  test('truncated real xz and zstd packages are input errors', async () => {
    for (const z of ['xz', 'zstd', 'gzip'] as const) {
      const b = buildDeb(dir, { name: `cut-${z}`, items, compression: z });
      const bytes = readFileSync(b.path);
      const p = join(dir, `cut-${z}.deb`);
      writeFileSync(p, bytes.subarray(0, bytes.length - 200));
      await expectInputError(
        (async () => {
          const d = await readDeb(p);
          for await (const e of d.entries()) for await (const _ of e.body) void _;
        })(),
        /truncated|corrupt/,
      );
    }
  });

  test('wrong member order, unknown members, trailing members', async () => {
    const cases: [string, Parameters<typeof debBytes>[0]['members'], RegExp][] = [
      ['data-first', (s) => [s.binary, s.data, s.control], /found member "data\.tar" where control\.tar/],
      ['no-binary', (s) => [s.control, s.data], /found member "control\.tar" where debian-binary/],
      [
        'unknown',
        (s) => [s.binary, { name: 'extra', data: Buffer.from('x') }, s.control, s.data],
        /found member "extra"/,
      ],
      [
        'trailing',
        (s) => [s.binary, s.control, s.data, { name: 'junk', data: Buffer.from('x') }],
        /found member "junk" where nothing after data/,
      ],
      ['no-data', (s) => [s.binary, s.control], /"\(end of file\)" where data\.tar/],
      [
        'bad-version',
        (s) => [{ name: 'debian-binary', data: Buffer.from('3.0\n') }, s.control, s.data],
        /unsupported package format/,
      ],
    ];
    for (const [name, members, re] of cases) {
      const p = join(dir, `order-${name}.deb`);
      writeFileSync(p, debBytes({ data: [{ name: './a', content: 'a' }], members }));
      await expectInputError(
        (async () => {
          const d = await readDeb(p);
          for await (const _ of d.entries()) void _;
        })(),
        re,
      );
    }
  });

  test('members starting with "_" are ignored; GNU "name/" spelling accepted', async () => {
    const p = join(dir, 'underscore.deb');
    writeFileSync(
      p,
      debBytes({
        data: [{ name: './a', content: 'hello' }],
        members: (s) => [
          { name: 'debian-binary/', data: s.binary.data },
          { name: '_gpgorigin', data: Buffer.from('sig') },
          { ...s.control, name: 'control.tar/' },
          s.data,
          { name: '_trailer', data: Buffer.from('odd') },
        ],
      }),
    );
    const { entries } = await listEntries(p);
    expect(entries).toEqual([
      { name: './a', type: 'file', mode: 0o644, uid: 0, gid: 0, linkname: '', content: 'hello' },
    ]);
  });

  test('corrupt gzip data is an input error naming the member', async () => {
    const p = join(dir, 'badgz.deb');
    const good = gzipSync(tarBytes([{ name: './a', content: 'x'.repeat(1000) }]));
    good[20] ^= 0xff;
    good[30] ^= 0xff;
    writeFileSync(
      p,
      arBytes([
        { name: 'debian-binary', data: Buffer.from('2.0\n') },
        { name: 'control.tar.gz', data: gzipSync(tarBytes([{ name: './control', content: controlText('z') }])) },
        { name: 'data.tar.gz', data: good },
      ]),
    );
    await expectInputError(
      (async () => {
        const d = await readDeb(p);
        for await (const e of d.entries()) for await (const _ of e.body) void _;
      })(),
      /data\.tar\.gz: corrupt/,
    );
  });

  test('xz members written by @napi-rs/lzma decode; a control archive without control is refused', async () => {
    const p = join(dir, 'noctl.deb');
    writeFileSync(
      p,
      arBytes([
        { name: 'debian-binary', data: Buffer.from('2.0\n') },
        { name: 'control.tar.xz', data: await xz.compress(tarBytes([{ name: './md5sums', content: '' }])) },
        { name: 'data.tar', data: tarBytes([]) },
      ]),
    );
    await expectInputError(readDeb(p), /has no "control" file/);
  });

  test('ArReader streams members with odd sizes and padding', async () => {
    const bytes = arBytes([
      { name: 'one', data: Buffer.from('abc') },
      { name: 'two', data: Buffer.from('defg') },
    ]);
    async function* chunks() {
      for (let i = 0; i < bytes.length; i += 7) yield bytes.subarray(i, i + 7);
    }
    const ar = new ArReader(new ByteReader(chunks(), 'mem.a'), 'mem.a');
    const got: [string, string][] = [];
    for (let m = await ar.next(); m; m = await ar.next()) got.push([m.name, (await ar.readBody()).toString()]);
    expect(got).toEqual([
      ['one', 'abc'],
      ['two', 'defg'],
    ]);
  });
});

describe('tar reader', () => {
  test('PAX values stay binary (security.capability), long names via PAX path', async () => {
    const cap = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x80, 0xff, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    const long = './usr/share/' + 'x'.repeat(150) + '/file';
    const bytes = tarBytes([
      { name: './usr/bin/ping', content: 'ping', mode: 0o755, pax: { 'SCHILY.xattr.security.capability': cap } },
      { name: 'ignored', content: 'long', pax: { path: long } },
    ]);
    async function* one() {
      yield bytes;
    }
    const got: { name: string; cap?: Buffer; content: string }[] = [];
    for await (const e of readTar(one(), 'mem.tar')) {
      const parts: Buffer[] = [];
      for await (const c of e.body) parts.push(c);
      got.push({
        name: e.name,
        cap: e.pax['SCHILY.xattr.security.capability'],
        content: Buffer.concat(parts).toString(),
      });
    }
    expect(got[0].cap!.equals(cap)).toBe(true);
    expect(got[1]).toMatchObject({ name: long, content: 'long' });
    expect(got[1].cap).toBeUndefined();
  });

  test('a header checksum mismatch is an input error', async () => {
    const bytes = tarBytes([{ name: './a', content: 'x' }]);
    bytes[10] ^= 1;
    async function* one() {
      yield bytes;
    }
    await expectInputError(
      (async () => {
        for await (const _ of readTar(one(), 'mem.tar')) void _;
      })(),
      /mem\.tar: corrupt tar archive: header checksum mismatch/,
    );
  });
});

/**
 * Index-only staging (minimize: false): packages are indexed, not unpacked.
 * It must agree with unpacking on disk in everything that reaches the image:
 * the same index, the same errors for hostile packages, the same content
 * bytes, and a byte-identical layer; and it must write no package file under
 * the root.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createStagingRoot } from '../../src/stage/root.js';
import { unpackDeb } from '../../src/debian/unpack.js';
import { readEntryContent } from '../../src/stage/fsutil.js';
import type { StagingRoot } from '../../src/stage/types.js';
import { layerEntries } from '../../src/image/root-entries.js';
import { writeImageTar } from '../../src/image/write-image.js';
import { buildDeb, mergedUsrItems, sha256Of, tempDir, type TreeItem } from '../helpers/debbuild.js';
import { writeDeb, type TarSpec } from '../helpers/hostile-deb.js';

let work: string;
let n = 0;
beforeAll(() => {
  work = tempDir('index-only');
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function roots(): Promise<[StagingRoot, StagingRoot]> {
  const dir = join(work, `case-${++n}`);
  mkdirSync(dir);
  return [await createStagingRoot(join(dir, 'disk')), await createStagingRoot(join(dir, 'index'), { indexOnly: true })];
}

/** What of an index reaches the image (hostPath and offsets differ by design). */
function comparable(root: StagingRoot): unknown[] {
  return [...root.entries.values()]
    .map((e) => [
      e.path,
      e.type,
      e.mode,
      e.uid,
      e.gid,
      e.size,
      e.linkTarget ?? '',
      e.origin,
      e.sha256 ?? '',
      e.sha1 ?? '',
      e.capability?.toString('hex') ?? '',
    ])
    .sort((a, b) => (a[0] < b[0] ? -1 : 1));
}

async function outcome(p: Promise<unknown>): Promise<string> {
  return p.then(
    () => 'ok',
    (e: unknown) => `${(e as Error).constructor.name}: ${(e as Error).message}`,
  );
}

const items: TreeItem[] = [
  ...mergedUsrItems('E'.repeat(70000)),
  { path: 'usr/share/empty', type: 'file', content: '' },
];

describe('index-only staging agrees with unpacking on disk', () => {
  for (const compression of ['xz', 'gzip', 'zstd', 'none'] as const) {
    test(`same index, same content bytes, same layer (${compression})`, async () => {
      const [disk, index] = await roots();
      const a = buildDeb(join(work), { name: `pa-${compression}`, items, compression });
      const b = buildDeb(join(work), {
        name: `pb-${compression}`,
        compression,
        items: [
          { path: 'usr/share/common/same', type: 'file', content: 'same' },
          { path: 'usr/bin/foo', type: 'file', content: 'foo-binary', mode: 0o755 }, // identical content: allowed
          { path: 'opt/d/f', type: 'file', content: 'f' },
        ],
      });
      for (const root of [disk, index]) {
        await unpackDeb(root, a.path, a.sha256);
        await unpackDeb(root, b.path, b.sha256);
      }
      expect(comparable(index)).toEqual(comparable(disk));
      expect(index.packages.map((p) => p.paths)).toEqual(disk.packages.map((p) => p.paths));

      // Content read out of the data tar equals the unpacked file.
      for (const e of index.entries.values()) {
        if (e.type !== 'file') continue;
        expect(e.contentOffset, e.path).toBeTypeOf('number');
        expect(readEntryContent(index.dir, e).equals(readFileSync(disk.dir + e.path)), e.path).toBe(true);
      }
      // Nothing of the packages on disk under the index-only root: only the merged-/usr layout.
      expect(readdirSync(index.dir).sort()).toEqual(['bin', 'lib', 'lib64', 'sbin', 'usr']);
      expect(readdirSync(index.dir + '/usr').sort()).toEqual(['bin', 'lib', 'lib64', 'sbin']);
      expect(readdirSync(index.dir + '/usr/bin')).toEqual([]);

      // The layer (and so the image) is byte-identical.
      const spec = {
        name: 'x',
        tag: 'latest',
        architecture: 'amd64',
        sourceDateEpoch: 1700000000,
        config: { env: {}, labels: {}, exposedPorts: [] },
        manifestSha256: '0'.repeat(64),
      };
      const tars = [disk, index].map((root, i) => {
        const out = join(work, `case-${n}`, `image-${i}.tar`);
        writeImageTar(spec, layerEntries(root, new Set(root.entries.keys())), out);
        return readFileSync(out);
      });
      expect(tars[1].equals(tars[0])).toBe(true);
    });
  }
});

describe('hostile packages: the same refusal in both modes, nothing written', () => {
  const cases: Array<[string, TarSpec[]]> = [
    [
      '".." name',
      [
        { name: './etc/', type: '5' },
        { name: '../sentinel/evil', content: 'pwned' },
      ],
    ],
    ['absolute name', [{ name: '/mkimg-abs/evil', content: 'pwned' }]],
    [
      'symlink that climbs out, file through it',
      [
        { name: './x', type: '2', linkname: '../../../../tmp' },
        { name: './x/mkimg-evil', content: 'pwned' },
      ],
    ],
    [
      'directory through a climbing link',
      [
        { name: './y', type: '2', linkname: '../..' },
        { name: './y/sentinel/', type: '5' },
      ],
    ],
    [
      'file over a symlink',
      [
        { name: './s', type: '2', linkname: '/etc/passwd' },
        { name: './s', content: 'overwrite' },
      ],
    ],
    ['hardlink to a host file', [{ name: './pw', type: '1', linkname: '/etc/passwd' }]],
    [
      'hardlink to a file not extracted',
      [
        { name: './etc/', type: '5' },
        { name: './pw', type: '1', linkname: './etc/passwd' },
      ],
    ],
    [
      'hardlink through a link to the host',
      [
        { name: './l', type: '2', linkname: '/etc' },
        { name: './pw', type: '1', linkname: './l/passwd' },
      ],
    ],
    [
      'hardlink above the root',
      [
        { name: './l', type: '2', linkname: '../../sentinel' },
        { name: './pw', type: '1', linkname: './l/target' },
      ],
    ],
    [
      'block device',
      [
        { name: './dev/', type: '5' },
        { name: './dev/sda', type: '4', devmajor: 8, devminor: 0 },
      ],
    ],
    ['fifo', [{ name: './pipe', type: '6' }]],
    [
      'file where a directory is',
      [
        { name: './d/', type: '5' },
        { name: './d', content: 'x' },
      ],
    ],
    [
      'directory where a file is',
      [
        { name: './f', content: 'x' },
        { name: './f/', type: '5' },
      ],
    ],
    ['a name component over 255 bytes', [{ name: './x', content: 'x', pax: { path: `./usr/${'n'.repeat(256)}` } }]],
    [
      'a path over 4096 bytes',
      [{ name: './x', content: 'x', pax: { path: './' + Array(20).fill('d'.repeat(250)).join('/') } }],
    ],
    ['an empty entry name', [{ name: '', content: 'x' }]],
    [
      'a name that is not UTF-8',
      [{ name: './x', content: 'x', pax: { path: Buffer.from([0x2e, 0x2f, 0x61, 0xff, 0xfe]) } }],
    ],
    [
      'a link target that is not UTF-8',
      [{ name: './l', type: '2', linkname: 'x', pax: { linkpath: Buffer.from([0x61, 0xc3]) } }],
    ],
    [
      'one file twice in one package, different content',
      [
        { name: './etc/', type: '5' },
        { name: './etc/f', content: 'a' },
        { name: './etc/f', content: 'b' },
      ],
    ],
  ];
  for (const [what, data] of cases) {
    test(what, async () => {
      const [disk, index] = await roots();
      const p = join(work, `case-${n}`, 'evil.deb');
      writeDeb(p, { data });
      const results = [await outcome(unpackDeb(disk, p, sha256Of(p))), await outcome(unpackDeb(index, p, sha256Of(p)))];
      expect(results[0]).toMatch(/^MkimgError: /);
      expect(results[1]).toBe(results[0]);
      const words: Record<string, RegExp> = {
        'a name component over 255 bytes': /name has a component of 256 bytes, more than the 255/,
        'a path over 4096 bytes': /name is 50\d\d bytes long, more than a path may be \(4095\)/,
        'an empty entry name': /name is empty/,
        'a name that is not UTF-8': /not valid UTF-8/,
        'a link target that is not UTF-8': /not valid UTF-8/,
        'one file twice in one package, different content':
          /\/etc\/f: package evil ships it twice, with different content/,
      };
      if (words[what]) expect(results[0]).toMatch(words[what]!);
      expect(readdirSync(index.dir).sort()).toEqual(['bin', 'lib', 'lib64', 'sbin', 'usr']);
    });
  }

  test('an absolute symlink resolves inside the index, not on the host', async () => {
    const [disk, index] = await roots();
    const p = join(work, `case-${n}`, 'abs.deb');
    writeDeb(p, {
      name: 'abslink',
      data: [
        { name: './z', type: '2', linkname: '/etc' },
        { name: './z/evil', content: 'contained' },
      ],
    });
    for (const root of [disk, index]) await unpackDeb(root, p, sha256Of(p));
    expect(comparable(index)).toEqual(comparable(disk));
    const e = index.entries.get('/etc/evil')!;
    expect(readEntryContent(index.dir, e).toString()).toBe('contained');
  });

  test('security.capability and setuid land in the index alone', async () => {
    const [disk, index] = await roots();
    const cap = Buffer.from('0100000200200000000000000000000000000000', 'hex');
    const p = join(work, `case-${n}`, 'cap.deb');
    writeDeb(p, {
      name: 'iputils',
      data: [
        { name: './bin/', type: '5' },
        {
          name: './bin/ping',
          content: 'ping',
          mode: 0o6755,
          uid: 0,
          gid: 0,
          pax: { 'SCHILY.xattr.security.capability': cap },
        },
      ],
    });
    for (const root of [disk, index]) await unpackDeb(root, p, sha256Of(p));
    expect(comparable(index)).toEqual(comparable(disk));
    expect(index.entries.get('/usr/bin/ping')).toMatchObject({ mode: 0o6755 });
  });
});

describe('corrupt compression: the same refusal in both modes', () => {
  test('a gzip data archive without its trailer', async () => {
    const [disk, index] = await roots();
    const p = join(work, `case-${n}`, 'notrailer.deb');
    writeDeb(p, {
      data: [{ name: './a', content: 'a'.repeat(3000) }],
      gzip: true,
      members: (m) => [
        m.binary,
        m.control,
        { name: m.data.name, data: m.data.data.subarray(0, m.data.data.length - 8) },
      ],
    });
    const results = [await outcome(unpackDeb(disk, p, sha256Of(p))), await outcome(unpackDeb(index, p, sha256Of(p)))];
    expect(results[0]).toMatch(/^MkimgError: .*data\.tar\.gz: corrupt gzip data: .*(incomplete|unexpected end)/i);
    expect(results[1]).toBe(results[0]);
  });
});

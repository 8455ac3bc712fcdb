/**
 * The image tar's layout plan (src/image/layout.ts), pure: order, headers,
 * offsets and the layer rule — the first layer blob in name order is padded
 * (a PAX `comment`) so that its data starts where it would if every non-layer
 * blob sorted before it, whatever the digests.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { planLayout, type LayoutMember, type LayoutPlan } from '../../src/image/layout.js';
import { encodeHeader, headerLength, padding, type TarHeader as Header } from '../../src/image/tar-header.js';
import { TarParser, type TarHeader } from '../../src/image/tar-reader.js';

const work = mkdtempSync(join(tmpdir(), 'mkimg-layout-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const MTIME = 1700000000;
const hex = (c: string) => c.repeat(64);
const dirs: LayoutMember[] = [
  { name: 'blobs', type: 'dir' },
  { name: 'blobs/sha256', type: 'dir' },
];
const tail: LayoutMember[] = [
  { name: 'index.json', type: 'file', bytes: Buffer.from('{"index":1}') },
  { name: 'manifest.json', type: 'file', bytes: Buffer.from('[{"docker":1}]') },
  { name: 'oci-layout', type: 'file', bytes: Buffer.from('{"imageLayoutVersion":"1.0.0"}') },
];
const json = (c: string, size: number): LayoutMember => ({
  name: `blobs/sha256/${hex(c)}`,
  type: 'file',
  bytes: Buffer.alloc(size, c),
});
const layer = (c: string, size: number): LayoutMember => ({
  name: `blobs/sha256/${hex(c)}`,
  type: 'file',
  bytes: Buffer.alloc(size, c.toUpperCase()),
  layer: true,
});

/** An entry's bytes on disk: header, content, padding. */
const entryBytes = (size: number) => 512 + size + padding(size);

/** The tar the plan describes, assembled in memory (every member here has in-memory bytes). */
function assemble(plan: LayoutPlan): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (const p of plan.members) {
    expect(p.offset).toBe(at);
    expect(p.dataOffset).toBe(p.offset + p.header.length);
    parts.push(p.header);
    if (p.member.type === 'file' && 'bytes' in p.member) parts.push(p.member.bytes, Buffer.alloc(padding(p.size)));
    at = p.dataOffset + p.size + padding(p.size);
  }
  parts.push(Buffer.alloc(1024));
  const tar = Buffer.concat(parts);
  expect(tar.length).toBe(plan.size);
  return tar;
}

function parse(tar: Buffer): { headers: TarHeader[]; bodies: Map<string, Buffer>; dataOffsets: Map<string, number> } {
  const headers: TarHeader[] = [];
  const bodies = new Map<string, Buffer>();
  const dataOffsets = new Map<string, number>();
  const p = new TarParser((h) => {
    headers.push(h);
    dataOffsets.set(h.name, p.bytesConsumed);
    const parts: Buffer[] = [];
    return { write: (b) => parts.push(Buffer.from(b)), end: () => bodies.set(h.name, Buffer.concat(parts)) };
  });
  // Odd chunk size: the PAX header straddles chunks.
  for (let i = 0; i < tar.length; i += 777) p.push(tar.subarray(i, i + 777));
  p.end();
  return { headers, bodies, dataOffsets };
}

function gnuList(tar: Buffer, name: string): string[] {
  const f = join(work, name);
  writeFileSync(f, tar);
  return execFileSync('tar', ['-tf', f], { encoding: 'utf8' }).trim().split('\n');
}

describe('image tar layout: the layer rule', () => {
  // config 900 bytes (2 data blocks), image manifest 400 bytes (1 block), layer 10240 bytes.
  const CONFIG = 900;
  const MANIFEST = 400;
  const LAYER = 10240;
  // Where the layer's data starts if every non-layer blob sorts before it.
  const EXPECTED = 2 * 512 + entryBytes(CONFIG) + entryBytes(MANIFEST) + 512;

  const cases: Array<{ what: string; config: string; manifest: string; layer: string; room: number }> = [
    { what: 'layer first', layer: '1', config: '5', manifest: '9', room: entryBytes(CONFIG) + entryBytes(MANIFEST) },
    {
      what: 'layer first (manifest before config)',
      layer: '1',
      config: '9',
      manifest: '5',
      room: entryBytes(CONFIG) + entryBytes(MANIFEST),
    },
    { what: 'layer between config and manifest', layer: '5', config: '1', manifest: '9', room: entryBytes(MANIFEST) },
    { what: 'layer between manifest and config', layer: '5', config: '9', manifest: '1', room: entryBytes(CONFIG) },
    { what: 'layer last', layer: '9', config: '1', manifest: '5', room: 0 },
  ];

  for (const c of cases) {
    it(`${c.what}: data at the fixed offset, padding = the entries of the blobs after it`, () => {
      const members = [...tail, layer(c.layer, LAYER), json(c.manifest, MANIFEST), ...dirs, json(c.config, CONFIG)];
      const plan = planLayout(members, MTIME);
      expect(plan.members.map((p) => p.member.name)).toEqual([
        'blobs',
        'blobs/sha256',
        ...[c.layer, c.config, c.manifest].sort().map((x) => `blobs/sha256/${hex(x)}`),
        'index.json',
        'manifest.json',
        'oci-layout',
      ]);
      const first = plan.firstLayer!;
      expect(first.member.name).toBe(`blobs/sha256/${hex(c.layer)}`);
      expect(first.dataOffset).toBe(EXPECTED);
      expect(first.header.length).toBe(512 + c.room);
      // Only the first layer's header is padded; every other header is the plain one.
      for (const p of plan.members.filter((x) => x !== first)) expect(p.header.length).toBe(512);

      const tar = assemble(plan);
      const { headers, bodies, dataOffsets } = parse(tar);
      expect(headers.map((h) => h.name)).toEqual(
        plan.members.map((p) => (p.member.type === 'dir' ? `${p.member.name}/` : p.member.name)),
      );
      const lh = headers.find((h) => h.name === first.member.name)!;
      expect(lh).toMatchObject({ type: '0', size: LAYER, mode: 0o644, uid: 0, gid: 0, mtime: MTIME });
      expect(dataOffsets.get(first.member.name)).toBe(EXPECTED);
      expect(bodies.get(first.member.name)!.equals(Buffer.alloc(LAYER, c.layer.toUpperCase()))).toBe(true);
      if (c.room > 0) {
        expect(Object.keys(lh.pax)).toEqual(['comment']);
        expect(lh.pax.comment).toMatch(/^0+$/);
      } else {
        expect(lh.pax).toEqual({});
      }
      expect(gnuList(tar, 'case.tar')).toEqual(headers.map((h) => h.name));
    });
  }

  it('gives the same layer data offset whatever the digests', () => {
    const offsets = new Set<number>();
    const digits = '0123456789abcdef';
    for (let i = 0; i < 60; i++) {
      // Three distinct first characters, in every arrangement over the loop.
      const [l, c, m] = [digits[i % 16]!, digits[(i * 7 + 3) % 16]!, digits[(i * 11 + 9) % 16]!];
      if (l === c || l === m || c === m) continue;
      const plan = planLayout([...dirs, json(c, CONFIG), json(m, MANIFEST), layer(l, LAYER), ...tail], MTIME);
      offsets.add(plan.firstLayer!.dataOffset);
    }
    expect([...offsets]).toEqual([EXPECTED]);
  });

  it('several layers (pull): the first in name order carries all the padding, the others none', () => {
    // layers 2 and 7, config 4, manifest b: the first layer (2) has config and manifest after it.
    const members = [...dirs, layer('7', 3000), json('4', CONFIG), layer('2', LAYER), json('b', MANIFEST), ...tail];
    const plan = planLayout(members, MTIME);
    const byName = new Map(plan.members.map((p) => [p.member.name, p]));
    expect(plan.firstLayer!.member.name).toBe(`blobs/sha256/${hex('2')}`);
    expect(plan.firstLayer!.dataOffset).toBe(EXPECTED);
    expect(byName.get(`blobs/sha256/${hex('7')}`)!.header.length).toBe(512);
    const tar = assemble(plan);
    const { headers, bodies } = parse(tar);
    expect(headers.filter((h) => Object.keys(h.pax).length > 0).map((h) => h.name)).toEqual([
      `blobs/sha256/${hex('2')}`,
    ]);
    expect(gnuList(tar, 'layers.tar')).toEqual(headers.map((h) => h.name));
    expect(bodies.get(`blobs/sha256/${hex('7')}`)!.equals(Buffer.alloc(3000, '7'))).toBe(true);

    // Second layer first in name order: it takes the padding.
    const swapped = planLayout(
      [...dirs, layer('1', 3000), json('4', CONFIG), layer('2', LAYER), json('b', MANIFEST), ...tail],
      MTIME,
    );
    expect(swapped.firstLayer!.member.name).toBe(`blobs/sha256/${hex('1')}`);
    expect(swapped.firstLayer!.dataOffset).toBe(2 * 512 + entryBytes(CONFIG) + entryBytes(MANIFEST) + 512);
    expect(swapped.members.find((p) => p.member.name === `blobs/sha256/${hex('2')}`)!.header.length).toBe(512);
  });

  it('no layer: no padding; duplicates collapse; input order does not matter', () => {
    const a = planLayout([...dirs, json('5', 10), json('1', 20), json('5', 10), ...tail], MTIME);
    const b = planLayout([...tail].reverse().concat([json('1', 20), json('5', 10)], dirs), MTIME);
    expect(a.firstLayer).toBeUndefined();
    expect(a.members.every((p) => p.header.length === 512)).toBe(true);
    expect(assemble(a).equals(assemble(b))).toBe(true);
  });

  it('an empty non-layer blob after the layer: one block of room, a PAX header with no records', () => {
    const plan = planLayout(
      [...dirs, layer('1', LAYER), { name: `blobs/sha256/${hex('e')}`, type: 'file', bytes: Buffer.alloc(0) }, ...tail],
      MTIME,
    );
    expect(plan.firstLayer!.header.length).toBe(1024);
    expect(plan.firstLayer!.dataOffset).toBe(2 * 512 + 512 + 512);
    const tar = assemble(plan);
    const { headers, bodies } = parse(tar);
    expect(headers[2]).toMatchObject({ name: `blobs/sha256/${hex('1')}`, pax: {} });
    expect(bodies.get(`blobs/sha256/${hex('1')}`)!.length).toBe(LAYER);
    expect(gnuList(tar, 'empty.tar')).toEqual(headers.map((h) => h.name));
  });

  it('a layer of 8 GiB or more: its size record and the padding share one PAX header', () => {
    const big = 9 * 2 ** 30;
    const members: LayoutMember[] = [
      ...dirs,
      { name: `blobs/sha256/${hex('1')}`, type: 'file', written: true, size: big, layer: true },
      json('5', CONFIG),
      json('9', MANIFEST),
      ...tail,
    ];
    const plan = planLayout(members, MTIME);
    const natural = encodeHeader({
      name: `blobs/sha256/${hex('1')}`,
      type: 'file',
      mode: 0o644,
      uid: 0,
      gid: 0,
      size: big,
      mtime: MTIME,
    });
    expect(natural.length).toBe(1536);
    const first = plan.firstLayer!;
    expect(first.header.length).toBe(natural.length + entryBytes(CONFIG) + entryBytes(MANIFEST));
    expect(first.dataOffset).toBe(2 * 512 + entryBytes(CONFIG) + entryBytes(MANIFEST) + natural.length);
    // The header parses alone: size from its record, the comment ignored.
    const headers: TarHeader[] = [];
    const p = new TarParser((h) => void headers.push(h));
    p.push(first.header);
    expect(headers[0]).toMatchObject({ name: `blobs/sha256/${hex('1')}`, size: big });
    expect(Object.keys(headers[0]!.pax)).toEqual(['comment', 'size']);
    expect(plan.size).toBe(first.dataOffset + big + entryBytes(CONFIG) + entryBytes(MANIFEST) + 3 * 512 * 2 + 1024);
  });
});

describe('encodeHeader with a length', () => {
  const h = { name: 'x', type: 'file' as const, mode: 0o644, uid: 0, gid: 0, size: 5, mtime: 0 };

  it('pads with a PAX comment record to exactly the length asked, for every block count', () => {
    for (let blocks = 1; blocks <= 12; blocks++) {
      const b = encodeHeader(h, blocks * 512);
      expect(b.length).toBe(blocks * 512);
      const headers: TarHeader[] = [];
      const p = new TarParser((x) => void headers.push(x));
      p.push(b);
      expect(headers).toHaveLength(1);
      expect(headers[0]).toMatchObject({ name: 'x', size: 5 });
      if (blocks >= 3) {
        // The PAX data fills its blocks with no zero padding.
        const dataLen = parseInt(b.subarray(124, 135).toString('latin1'), 8);
        expect(dataLen).toBe(blocks * 512 - 1024);
        expect(headers[0]!.pax.comment!.length).toBeGreaterThan(0);
      }
    }
    expect(encodeHeader(h, 512).equals(encodeHeader(h))).toBe(true);
  });

  it('headerLength is the length encodeHeader gives, without encoding', () => {
    const base: Header = { name: 'usr/bin/x', type: 'file', mode: 0o755, uid: 0, gid: 0, size: 1, mtime: 0 };
    const variants: Header[] = [
      base,
      { ...base, name: 'd/'.repeat(60) + 'f' }, // prefix split
      { ...base, name: 'é'.repeat(140) }, // no split: PAX path
      { ...base, type: 'symlink', linkname: 'l'.repeat(101) },
      { ...base, size: 2 ** 33 + 1 },
      { ...base, uid: 2 ** 21 + 1, gid: 2 ** 22 },
      { ...base, xattrs: { 'security.capability': Buffer.alloc(20, 1) } },
      { ...base, type: 'dir', name: 'x'.repeat(100) }, // the added "/" makes it 101 bytes
    ];
    for (const v of variants) expect(headerLength(v)).toBe(encodeHeader(v).length);
  });

  it('refuses a length shorter than the header or off the block grid', () => {
    expect(() => encodeHeader(h, 700)).toThrow(/cannot take/);
    expect(() => encodeHeader({ ...h, name: 'n/'.repeat(200) + 'x' }, 512)).toThrow(/cannot take/);
  });
});

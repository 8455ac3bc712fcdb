import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { TempDir } from '../helpers/pgp.js';
import { forgeImage, layerTar, readTar, writeOciFixture, writeTar, type FixtureFile } from '../helpers/oci-fixture.js';
import { diffImages, diffJson, type Difference } from '../../src/verify/diff.js';

let dir: TempDir;
const base: FixtureFile[] = [
  { name: 'etc/', type: 'directory' },
  { name: 'etc/hello.txt', content: 'hello\n' },
  { name: 'etc/motd', content: 'welcome\n' },
  { name: 'usr/bin/sh', type: 'symlink', linkname: 'busybox' },
];
let a: string;

beforeAll(async () => {
  dir = new TempDir('mkimg-diff-');
  a = join(dir.path, 'a.tar');
  await writeOciFixture(a, { files: base, env: ['PATH=/usr/bin', 'LANG=C'] });
});
afterAll(() => dir?.cleanup());

const find = (ds: Difference[], where: string, field?: string) =>
  ds.find((d) => d.where === where && (field === undefined || d.field === field));

describe('mkimg diff', () => {
  it('identical tars', async () => {
    const b = join(dir.path, 'same.tar');
    copyFileSync(a, b);
    expect(await diffImages(a, b)).toEqual({ identical: true, differences: [] });
  });

  it('a config key: the JSON path, both values', async () => {
    const b = join(dir.path, 'env.tar');
    await forgeImage(a, b, { config: (c) => (c.config.Env[1] = 'LANG=C.UTF-8') });
    const d = await diffImages(a, b);
    expect(d.identical).toBe(false);
    const env = find(d.differences, 'config', 'config.config.Env[1]');
    expect(env).toMatchObject({ a: 'LANG=C', b: 'LANG=C.UTF-8' });
    // the digests that follow from it are reported as JSON keys too
    expect(find(d.differences, 'manifest', 'manifest.config.digest')).toBeDefined();
    expect(find(d.differences, 'index.json', 'index.manifests[0].digest')).toBeDefined();
    expect(find(d.differences, 'manifest.json', 'manifest[0].Config')).toBeDefined();
    // the layer did not change: nothing about it
    expect(d.differences.some((x) => x.where.startsWith('layer'))).toBe(false);
  });

  it('files in a layer: content, mode, mtime, owner names, link target, added and removed files', async () => {
    const changed: FixtureFile[] = [
      { name: 'etc/', type: 'directory', mode: 0o700 },
      { name: 'etc/hello.txt', content: 'HELLO\n' },
      { name: 'etc/motd', content: 'welcome\n', mtime: 1, uname: 'root', gname: 'root' },
      { name: 'usr/bin/sh', type: 'symlink', linkname: 'dash' },
      { name: 'usr/bin/new', content: 'x' },
    ];
    const b = join(dir.path, 'files.tar');
    const layer = await layerTar(changed, 1700000000);
    await forgeImage(a, b, { layer: () => layer });
    const d = (await diffImages(a, b)).differences;
    expect(find(d, 'layer 0: etc/hello.txt', 'content')).toBeDefined();
    expect(find(d, 'layer 0: etc/hello.txt', 'size')).toBeUndefined(); // same length, other bytes
    expect(find(d, 'layer 0: etc/', 'mode')).toMatchObject({ a: 0o755, b: 0o700 });
    expect(find(d, 'layer 0: etc/', 'mode')!.message).toContain('0755 ≠ 0700');
    expect(find(d, 'layer 0: etc/motd', 'mtime')).toMatchObject({ a: 1700000000, b: 1 });
    expect(find(d, 'layer 0: etc/motd', 'uname')).toMatchObject({ a: '', b: 'root' });
    expect(find(d, 'layer 0: etc/motd', 'content')).toBeUndefined();
    expect(find(d, 'layer 0: usr/bin/sh', 'linkname')).toMatchObject({ a: 'busybox', b: 'dash' });
    expect(find(d, 'layer 0: usr/bin/new')!.message).toMatch(/only in the second image/);
    expect(find(d, 'config', 'config.rootfs.diff_ids[0]')).toBeDefined();
  });

  it('pax records and header fields of the image tar itself', async () => {
    const entries = await readTar(a);
    const ix = entries.find((e) => e.header.name === 'index.json')!;
    ix.header = { ...ix.header, mode: 0o600, pax: { comment: 'tampered' } } as typeof ix.header;
    const b = join(dir.path, 'pax.tar');
    await writeTar(b, entries);
    const d = (await diffImages(a, b)).differences;
    expect(find(d, 'index.json (image tar entry)', 'mode')).toMatchObject({ a: 0o644, b: 0o600 });
    expect(find(d, 'index.json (image tar entry)', 'pax.comment')).toMatchObject({ a: undefined, b: 'tampered' });
  });

  it('diffJson names nested keys and array items', () => {
    const out: Difference[] = [];
    diffJson('config', 'config', { a: { 'x.y': [1, 2] }, b: 1 }, { a: { 'x.y': [1, 3, 4] }, c: true }, out);
    expect(out.map((d) => d.field)).toEqual(['config.a["x.y"][1]', 'config.a["x.y"][2]', 'config.b', 'config.c']);
  });
});

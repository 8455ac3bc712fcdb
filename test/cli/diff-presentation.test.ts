/**
 * `mkimg diff` as a person reads it: the real differences first, the digests
 * and sizes that merely follow from them in one summary line, and a unified
 * diff for a small changed text file.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diffImages } from '../../src/verify/diff.js';
import { mkimg, mkimgJson } from '../helpers/cli.js';
import { forgeImage, layerTar, writeOciFixture, type FixtureFile } from '../helpers/oci-fixture.js';
import { TempDir } from '../helpers/pgp.js';

let dir: TempDir;
let a: string;
const motd = 'welcome\nto the image\nline three\nline four\nline five\nline six\nline seven\nline eight\n';
const files: FixtureFile[] = [
  { name: 'etc/', type: 'directory' },
  { name: 'etc/motd', content: motd },
  { name: 'usr/bin/tool', content: Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1, 2, 3]) },
];

beforeAll(async () => {
  dir = new TempDir('mkimg-diff-cli-');
  a = join(dir.path, 'a.tar');
  await writeOciFixture(a, { files, env: ['PATH=/usr/bin'] });
});
afterAll(() => dir?.cleanup());

describe('mkimg diff presentation', () => {
  it('a changed text file: the file first, a unified diff of it, the digest cascade in one line', async () => {
    const b = join(dir.path, 'b.tar');
    const changed = files.map((f) =>
      f.name === 'etc/motd' ? { ...f, content: motd.replace('line five', 'line 5') } : f,
    );
    await forgeImage(a, b, { layer: () => layerTar(changed, 1700000000) });
    const r = mkimg(['diff', a, b]);
    expect(r.code).toBe(9);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe(`${a} and ${b} differ:`);
    expect(lines[1]).toMatch(/^ {2}layer 0: etc\/motd: header size: 83 ≠ 80$/);
    expect(lines[2]).toMatch(/^ {2}layer 0: etc\/motd: content differs/);
    expect(r.stdout).toContain(
      [
        '    --- a/etc/motd',
        '    +++ b/etc/motd',
        '    @@ -2,7 +2,7 @@',
        '     to the image',
        '     line three',
        '     line four',
        '    -line five',
        '    +line 5',
        '     line six',
        '     line seven',
        '     line eight',
      ].join('\n'),
    );
    const summary = lines.filter((l) => /digests? and sizes? that follow/.test(l));
    expect(summary).toHaveLength(1);
    expect(summary[0]).toMatch(
      /^ {2}\+ 6 digests and sizes that follow from the above \(config, index\.json, manifest, manifest\.json\); --json lists them$/,
    );
    const j = mkimgJson<{ differences: { where: string; field?: string; derived?: boolean; textDiff?: string[] }[] }>([
      'diff',
      a,
      b,
    ]);
    expect(j.json.differences[1]).toMatchObject({ where: 'layer 0: etc/motd', field: 'content' });
    expect(j.json.differences[1].textDiff).toContain('+line 5');
    const firstDerived = j.json.differences.findIndex((d) => d.derived);
    expect(firstDerived).toBeGreaterThan(0);
    expect(j.json.differences.slice(firstDerived).every((d) => d.derived)).toBe(true);
  });

  it('a binary file gets no text diff; a change of only digests is listed in full', async () => {
    const b = join(dir.path, 'bin.tar');
    const changed = files.map((f) =>
      f.name === 'usr/bin/tool' ? { ...f, content: Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 9, 9, 9]) } : f,
    );
    await forgeImage(a, b, { layer: () => layerTar(changed, 1700000000) });
    const d = await diffImages(a, b);
    const tool = d.differences.find((x) => x.where === 'layer 0: usr/bin/tool');
    expect(tool).toMatchObject({ field: 'content' });
    expect(tool!.textDiff).toBeUndefined();
  });
});

describe('unifiedDiff', () => {
  it('hunks with three lines of context, - before +, separate hunks for distant changes, added and removed ends', async () => {
    const { unifiedDiff, asTextLines } = await import('../../src/util/text-diff.js');
    const a = Array.from({ length: 20 }, (_, i) => `l${i + 1}`);
    const b = [...a.slice(0, 1), 'X', ...a.slice(2, 17), ...a.slice(18), 'new'];
    expect(unifiedDiff('f', a, b)).toEqual([
      '--- a/f',
      '+++ b/f',
      '@@ -1,5 +1,5 @@',
      ' l1',
      '-l2',
      '+X',
      ' l3',
      ' l4',
      ' l5',
      '@@ -15,6 +15,6 @@',
      ' l15',
      ' l16',
      ' l17',
      '-l18',
      ' l19',
      ' l20',
      '+new',
    ]);
    expect(unifiedDiff('f', [], ['only'])).toEqual(['--- a/f', '+++ b/f', '@@ -0,0 +1,1 @@', '+only']);
    expect(unifiedDiff('f', a, a)).toEqual([]);
    // A one-line document (minified JSON): each side's line is cut for the terminal.
    const long = unifiedDiff('sbom.json', [`{${'a'.repeat(500)}}`], [`{${'b'.repeat(500)}}`])!;
    expect(long.slice(2)).toEqual([
      '@@ -1,1 +1,1 @@',
      `-{${'a'.repeat(199)}… (302 more characters)`,
      `+{${'b'.repeat(199)}… (302 more characters)`,
    ]);
    expect(asTextLines(Buffer.from('a\nb\n'))).toEqual(['a', 'b']);
    expect(asTextLines(Buffer.from([0x61, 0, 0x62]))).toBeUndefined();
    expect(asTextLines(Buffer.from([0xff, 0xfe]))).toBeUndefined();
  });
});

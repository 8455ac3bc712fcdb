import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { xz } from '@napi-rs/lzma';
import { prepareDeb, unpackDeb, unpackDebs, unpackPrepared } from '../../src/debian/unpack.js';
import type { StagingRoot } from '../../src/stage/types.js';
import { MkimgError } from '../../src/util/errors.js';
import { mixedPackageSet, sha256Of, tempDir } from '../helpers/debbuild.js';
import { debBytes, truncatedXzDebBytes, type TarSpec } from '../helpers/hostile-deb.js';
import { sentinelIntact, sentinelRoots } from '../helpers/sentinel-root.js';
import { rejection } from '../helpers/errors.js';

let work: string;
let debs: string;
beforeAll(() => {
  work = tempDir('unpack-debs');
  debs = join(work, 'debs');
  mkdirSync(debs);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const freshRoot = sentinelRoots(() => work);

/** The index without host paths (they name the root directory), in insertion order. */
function indexOf(root: StagingRoot) {
  return {
    entries: [...root.entries.values()].map((e) => ({ ...e, hostPath: e.hostPath?.slice(root.dir.length) })),
    packages: root.packages,
  };
}

/** A crafted .deb with an xz data member (the compression Debian uses). */
function writeXzDeb(path: string, name: string, data: TarSpec[]): string {
  writeFileSync(
    path,
    debBytes({
      name,
      data,
      members: (s) => [s.binary, s.control, { name: 'data.tar.xz', data: xz.compressSync(s.data.data) }],
    }),
  );
  return path;
}

function packageSet(): { path: string; sha256: string }[] {
  return mixedPackageSet(debs, { docs: true, sharedConf: true, libz: Buffer.alloc(300_000, 7).toString() });
}

describe('unpackDebs', () => {
  test('gives the same root and index as unpackDeb one package after the other', async () => {
    const list = packageSet();
    const seq = await freshRoot();
    for (const d of list) await unpackDeb(seq.root, d.path, d.sha256);
    const pip = await freshRoot();
    const pkgs = await unpackDebs(pip.root, list);

    expect(pkgs).toEqual(pip.root.packages);
    expect(pkgs.map((p) => p.name)).toEqual(['base', 'libs', 'tools', 'plain', 'last']);
    expect(indexOf(pip.root)).toEqual(indexOf(seq.root));
    for (const e of pip.root.entries.values()) {
      if (e.type === 'file') expect(readFileSync(e.hostPath!)).toEqual(readFileSync(seq.root.dir + e.path));
    }
    expect(await unpackDebs((await freshRoot()).root, [])).toEqual([]);
  });

  test('prepareDeb then unpackPrepared is unpackDeb', async () => {
    const [d] = packageSet();
    const a = await freshRoot();
    await unpackDeb(a.root, d.path, d.sha256);
    const b = await freshRoot();
    const prepared = await prepareDeb(d.path, d.sha256.toUpperCase());
    expect(readdirSync(b.root.dir).sort()).toEqual(['bin', 'lib', 'lib64', 'sbin', 'usr']); // preparing writes nothing
    await unpackPrepared(b.root, prepared);
    expect(indexOf(b.root)).toEqual(indexOf(a.root));
  });

  test('a hostile package in the middle: the ones before are unpacked, it writes nothing outside, same error, the rest not unpacked', async () => {
    const list = packageSet();
    for (const gzip of [false, true]) {
      const seq = await freshRoot();
      const evilData: TarSpec[] = [
        { name: './etc/', type: '5' },
        { name: './etc/escape', type: '2', linkname: '../../sentinel' },
        { name: './etc/escape/evil', content: 'pwned' },
        { name: '../sentinel/evil2', content: 'pwned' },
      ];
      const evilPath = join(seq.caseDir, 'evil.deb');
      if (gzip) writeFileSync(evilPath, debBytes({ data: evilData, gzip: true }));
      else writeXzDeb(evilPath, 'evil', evilData);
      const evil = { path: evilPath, sha256: sha256Of(evilPath) };
      const batch = [list[0], list[1], evil, list[2], list[4]];

      let seqErr: MkimgError | null = null;
      for (const d of batch) {
        try {
          await unpackDeb(seq.root, d.path, d.sha256);
        } catch (e) {
          seqErr = e as MkimgError;
          break;
        }
      }
      expect(seqErr).toBeInstanceOf(MkimgError);

      const pip = await freshRoot();
      const err = await rejection(unpackDebs(pip.root, batch));
      expect(err.kind).toBe('input');
      expect(err.message).toBe(seqErr!.message);
      expect(err.message).toMatch(/hostile package evil/);
      expect(err.hint).toMatch(/nothing outside the staging root/);
      sentinelIntact(pip.sentinel);
      sentinelIntact(seq.sentinel);
      expect(pip.root.packages.map((p) => p.name)).toEqual(['base', 'libs']);
      expect(indexOf(pip.root)).toEqual(indexOf(seq.root));
      expect(existsSync(pip.root.dir + '/usr/bin/tool')).toBe(false);
      expect(existsSync(pip.root.dir + '/usr/lib/last')).toBe(false);
    }
  });

  test('a sha256 mismatch, a missing file or a corrupt xz member is reported in order, after the packages before it', async () => {
    const list = packageSet();
    const env = await freshRoot();
    const corrupt = join(env.caseDir, 'corrupt.deb');
    writeFileSync(corrupt, truncatedXzDebBytes('corrupt'));
    const cases: [{ path: string; sha256: string }, RegExp][] = [
      [
        { path: list[1].path, sha256: list[0].sha256 },
        new RegExp(`sha256 mismatch: expected ${list[0].sha256}, got ${list[1].sha256}`),
      ],
      [
        { path: join(env.caseDir, 'missing.deb'), sha256: list[0].sha256 },
        /missing\.deb: cannot read the package file \(ENOENT\)/,
      ],
      [{ path: corrupt, sha256: sha256Of(corrupt) }, /data\.tar\.xz: corrupt xz data/],
    ];
    for (const [bad, re] of cases) {
      const seq = await freshRoot();
      await unpackDeb(seq.root, list[0].path, list[0].sha256);
      const seqErr = await rejection(unpackDeb(seq.root, bad.path, bad.sha256));
      expect(seqErr.message).toMatch(re);

      // The bad one is prepared while the first is still being unpacked; its error waits its turn.
      const pip = await freshRoot();
      const err = await rejection(unpackDebs(pip.root, [list[0], bad, list[2], list[3]]));
      expect(err.message).toBe(seqErr.message);
      expect(pip.root.packages.map((p) => p.name)).toEqual(['base']);
      expect(indexOf(pip.root)).toEqual(indexOf(seq.root));
    }
  });

  test('the first failure in package order wins even when a later one fails first', async () => {
    const list = packageSet();
    const env = await freshRoot();
    const evil = join(env.caseDir, 'evil.deb');
    writeXzDeb(evil, 'evil', [{ name: '../sentinel/evil', content: 'pwned' }]);
    // list[2] is big enough to be prepared after the bad pin of the next one has already failed.
    const err = await rejection(
      unpackDebs(env.root, [
        list[0],
        { path: evil, sha256: sha256Of(evil) },
        { path: list[2].path, sha256: list[3].sha256 },
      ]),
    );
    expect(err.message).toMatch(/hostile package evil .*"\.\." component/);
    sentinelIntact(env.sentinel);
  });
});

/**
 * The data cache (unpackDebs(root, debs, { cacheDir, unpinnedData })): decompressed data
 * archives of xz/zstd packages kept under <cacheDir>/data/sha256/, verified on
 * read, never a way around the extraction checks.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { xz } from '@napi-rs/lzma';
import { dataArchiveSha256, unpackDebs } from '../../src/debian/unpack.js';
import { createStagingRoot } from '../../src/stage/root.js';
import { execFileSync } from 'node:child_process';
import type { StagingRoot } from '../../src/stage/types.js';
import { sha256Hex } from '../../src/util/digest.js';
import { mixedPackageSet, sha256Of, tempDir } from '../helpers/debbuild.js';
import { debBytes, tarBytes, truncatedXzDebBytes, type TarSpec } from '../helpers/hostile-deb.js';
import { sentinelIntact, sentinelRoots } from '../helpers/sentinel-root.js';
import { rejection } from '../helpers/errors.js';

let work: string;
let debs: string;
let list: { path: string; sha256: string }[];
beforeAll(() => {
  work = tempDir('data-cache');
  debs = join(work, 'debs');
  mkdirSync(debs);
  list = packageSet();
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const freshRoot = sentinelRoots(() => work);
let cacheN = 0;
const freshCache = (): string => join(work, `cache-${++cacheN}`);
const dataDir = (cacheDir: string): string => join(cacheDir, 'data', 'sha256');

/** The index without host paths, plus every file's bytes. */
function snapshot(root: StagingRoot) {
  const entries = [...root.entries.values()].map((e) => ({ ...e, hostPath: e.hostPath?.slice(root.dir.length) }));
  const contents: Record<string, string> = {};
  for (const e of root.entries.values())
    if (e.type === 'file') contents[e.path] = readFileSync(e.hostPath!).toString('base64');
  return { entries, packages: root.packages, contents };
}

function packageSet(): { path: string; sha256: string }[] {
  return mixedPackageSet(debs, { docs: false, sharedConf: false, libz: 'z'.repeat(100_000) });
}

/** Cache entries as { deb sha256 -> file name }. */
function entriesOf(cacheDir: string): Map<string, string> {
  const d = dataDir(cacheDir);
  const out = new Map<string, string>();
  if (!existsSync(d)) return out;
  for (const n of readdirSync(d)) out.set(n.slice(0, 64), n);
  return out;
}

async function unpackSnapshot(opts: { cacheDir?: string; unpinnedData?: boolean } = {}, set = list) {
  const r = await freshRoot();
  await unpackDebs(r.root, set, opts);
  sentinelIntact(r.sentinel);
  return snapshot(r.root);
}

describe('data cache', () => {
  test('a cold then a warm unpack give the index and contents of an uncached one; only xz and zstd are stored', async () => {
    const plain = await unpackSnapshot();
    const cache = freshCache();
    expect(await unpackSnapshot({ cacheDir: cache, unpinnedData: true })).toEqual(plain);

    const stored = entriesOf(cache);
    expect([...stored.keys()].sort()).toEqual([list[0].sha256, list[2].sha256, list[4].sha256].sort()); // xz, zstd, xz
    for (const [deb, name] of stored) {
      const bytes = readFileSync(join(dataDir(cache), name));
      expect(name).toBe(`${deb}.${sha256Hex(bytes)}.tar`);
    }

    expect(await unpackSnapshot({ cacheDir: cache, unpinnedData: true })).toEqual(plain);
    expect(entriesOf(cache)).toEqual(stored);
  });

  test('a warm unpack reads the cached tar instead of decompressing (an entry of the right name and digest is used)', async () => {
    // Proof the entry is used: a different (benign) tar stored under base's key shows up in the root.
    const cache = freshCache();
    await unpackSnapshot({ cacheDir: cache, unpinnedData: true });
    const tar = tarBytes([
      { name: './', type: '5' },
      { name: './bin/', type: '5' },
      { name: './bin/sh', content: 'from the cache', mode: 0o755 },
    ]);
    const d = dataDir(cache);
    rmSync(join(d, entriesOf(cache).get(list[0].sha256)!));
    writeFileSync(join(d, `${list[0].sha256}.${sha256Hex(tar)}.tar`), tar);
    const r = await freshRoot();
    await unpackDebs(r.root, [list[0]], { cacheDir: cache, unpinnedData: true });
    expect(readFileSync(r.root.dir + '/usr/bin/sh', 'utf8')).toBe('from the cache');
  });

  for (const damage of ['corrupted', 'truncated', 'emptied'] as const) {
    test(`a ${damage} entry is detected, deleted and rebuilt, with the same result`, async () => {
      const plain = await unpackSnapshot();
      const cache = freshCache();
      await unpackSnapshot({ cacheDir: cache, unpinnedData: true });
      const good = entriesOf(cache);
      const d = dataDir(cache);
      for (const deb of [list[0].sha256, list[2].sha256]) {
        const p = join(d, good.get(deb)!);
        const b = readFileSync(p);
        if (damage === 'corrupted') {
          b[600] ^= 0x20; // inside the first file's header/content
          writeFileSync(p, b);
        } else truncateSync(p, damage === 'truncated' ? b.length >> 1 : 0);
      }
      expect(await unpackSnapshot({ cacheDir: cache, unpinnedData: true })).toEqual(plain);
      // Rebuilt under the same names with the good bytes.
      expect(entriesOf(cache)).toEqual(good);
      for (const name of good.values()) expect(sha256Hex(readFileSync(join(d, name)))).toBe(name.slice(65, 129));
    });
  }

  test('a damaged entry whose name does not fit, and leftover temp files, are ignored', async () => {
    const plain = await unpackSnapshot();
    const cache = freshCache();
    mkdirSync(dataDir(cache), { recursive: true });
    writeFileSync(join(dataDir(cache), `${list[0].sha256}.nothex.tar`), 'junk');
    writeFileSync(join(dataDir(cache), `.tmp-1-abcdef`), 'junk');
    expect(await unpackSnapshot({ cacheDir: cache, unpinnedData: true })).toEqual(plain);
    expect(await unpackSnapshot({ cacheDir: cache, unpinnedData: true })).toEqual(plain);
  });

  test('two concurrent unpacks sharing one cache dir both succeed (cold, then warm)', async () => {
    const plain = await unpackSnapshot();
    const cache = freshCache();
    for (let round = 0; round < 2; round++) {
      const [a, b] = await Promise.all([
        unpackSnapshot({ cacheDir: cache, unpinnedData: true }),
        unpackSnapshot({ cacheDir: cache, unpinnedData: true }),
      ]);
      expect(a).toEqual(plain);
      expect(b).toEqual(plain);
      expect(entriesOf(cache).size).toBe(3);
      expect(readdirSync(dataDir(cache)).filter((n) => n.startsWith('.tmp-'))).toEqual([]);
    }
  });

  test('an unwritable cache dir costs only the caching', async () => {
    const plain = await unpackSnapshot();
    const blocker = join(work, 'not-a-dir');
    writeFileSync(blocker, 'a file where the cache dir should be');
    expect(await unpackSnapshot({ cacheDir: blocker, unpinnedData: true })).toEqual(plain);
  });

  test('a hostile package is refused the same way uncached, cold and warm; a hostile tar planted in the cache is refused too', async () => {
    const evilData: TarSpec[] = [
      { name: './etc/', type: '5' },
      { name: './etc/escape', type: '2', linkname: '../../sentinel' },
      { name: './etc/escape/evil', content: 'pwned' },
      { name: '../sentinel/evil2', content: 'pwned' },
    ];
    const evilPath = join(debs, 'evil.deb');
    writeFileSync(
      evilPath,
      debBytes({
        name: 'evil',
        data: evilData,
        members: (s) => [s.binary, s.control, { name: 'data.tar.xz', data: xz.compressSync(s.data.data) }],
      }),
    );
    const evil = { path: evilPath, sha256: sha256Of(evilPath) };
    const batch = [list[0], evil, list[4]];

    const run = async (opts: { cacheDir?: string; unpinnedData?: boolean }) => {
      const r = await freshRoot();
      const err = await rejection(unpackDebs(r.root, batch, opts));
      sentinelIntact(r.sentinel);
      expect(r.root.packages.map((p) => p.name)).toEqual(['base']);
      return {
        message: err.message.split(r.caseDir).join('<case>'),
        hint: err.hint,
        kind: err.kind,
        index: snapshot(r.root),
      };
    };
    const uncached = await run({});
    expect(uncached.message).toMatch(/hostile package evil/);
    const cache = freshCache();
    expect(await run({ cacheDir: cache, unpinnedData: true })).toEqual(uncached); // cold: its data is stored (it decompressed cleanly)...
    expect(entriesOf(cache).has(evil.sha256)).toBe(true);
    expect(await run({ cacheDir: cache, unpinnedData: true })).toEqual(uncached); // ...and refused again, from the cache, the same way

    // A hostile tar put into the cache under a benign package's key (with a matching digest):
    // extraction checks every entry, cached or not.
    const hostileTar = tarBytes([
      { name: './', type: '5' },
      { name: '../sentinel/evil', content: 'pwned' },
    ]);
    const d = dataDir(cache);
    rmSync(join(d, entriesOf(cache).get(list[4].sha256)!));
    writeFileSync(join(d, `${list[4].sha256}.${sha256Hex(hostileTar)}.tar`), hostileTar);
    const r = await freshRoot();
    const err = await rejection(unpackDebs(r.root, [list[0], list[4]], { cacheDir: cache, unpinnedData: true }));
    expect(err.message).toMatch(/hostile package last .*"\.\.\/sentinel\/evil": name .* has a "\.\." component/);
    sentinelIntact(r.sentinel);
  });

  test('a corrupt xz member is never cached and is reported the same way each time', async () => {
    const corrupt = join(debs, 'corrupt.deb');
    writeFileSync(corrupt, truncatedXzDebBytes('corrupt'));
    const bad = { path: corrupt, sha256: sha256Of(corrupt) };
    const cache = freshCache();
    const messages: string[] = [];
    for (const opts of [{}, { cacheDir: cache, unpinnedData: true }, { cacheDir: cache, unpinnedData: true }]) {
      const r = await freshRoot();
      messages.push((await rejection(unpackDebs(r.root, [list[0], bad], opts))).message);
    }
    expect(messages[0]).toMatch(/data\.tar\.xz: corrupt xz data/);
    expect(new Set(messages).size).toBe(1);
    expect(entriesOf(cache).has(bad.sha256)).toBe(false);
    expect(entriesOf(cache).has(list[0].sha256)).toBe(true);
  });

  test('the .deb is still checked against its pin when its data is cached', async () => {
    const cache = freshCache();
    await unpackSnapshot({ cacheDir: cache, unpinnedData: true });
    const r = await freshRoot();
    const err = await rejection(
      unpackDebs(r.root, [{ path: list[4].path, sha256: list[0].sha256 }], { cacheDir: cache, unpinnedData: true }),
    );
    expect(err.message).toMatch(/sha256 mismatch/);
    expect(r.root.packages).toEqual([]);
  });
});

describe('pinned data digests (lock dataSha256)', () => {
  /** What `dpkg-deb --fsys-tarfile` prints: the decompressed data member. */
  const fsysSha = (deb: string): string =>
    sha256Hex(execFileSync('dpkg-deb', ['--fsys-tarfile', deb], { maxBuffer: 1 << 28 }));
  const pinned = () => list.map((d) => ({ ...d, dataSha256: fsysSha(d.path) }));

  test('dataArchiveSha256 (what mkimg lock pins) is the sha256 of dpkg-deb --fsys-tarfile, for every compression', async () => {
    for (const d of list) expect(await dataArchiveSha256(d.path, d.sha256), d.path).toBe(fsysSha(d.path));
    // and it fills the cache under the pinned name, so the first build is warm
    const cache = freshCache();
    await dataArchiveSha256(list[0].path, list[0].sha256, cache);
    expect(entriesOf(cache).get(list[0].sha256)).toBe(`${list[0].sha256}.${fsysSha(list[0].path)}.tar`);
  });

  test('with pins the cache is used without --data-cache, and gives the uncached result', async () => {
    const plain = await unpackSnapshot();
    const cache = freshCache();
    expect(await unpackSnapshot({ cacheDir: cache }, pinned())).toEqual(plain); // cold
    const stored = entriesOf(cache);
    for (const d of pinned().filter((_, i) => i !== 1 && i !== 3))
      expect(stored.get(d.sha256)).toBe(`${d.sha256}.${d.dataSha256}.tar`); // xz and zstd
    expect(await unpackSnapshot({ cacheDir: cache }, pinned())).toEqual(plain); // warm
    // index-only roots too
    const r = await freshRoot();
    const index = await createStagingRoot(r.root.dir + '-index', { indexOnly: true });
    await unpackDebs(index, pinned(), { cacheDir: cache });
    expect(index.packages.map((p) => p.name)).toEqual(plain.packages.map((p) => p.name));
  });

  test('without pins and without --data-cache, cache entries are not read (not even well-formed hostile ones)', async () => {
    const plain = await unpackSnapshot();
    const cache = freshCache();
    const hostileTar = tarBytes([
      { name: './', type: '5' },
      { name: './etc/conf', content: 'injected' },
    ]);
    mkdirSync(dataDir(cache), { recursive: true });
    writeFileSync(join(dataDir(cache), `${list[0].sha256}.${sha256Hex(hostileTar)}.tar`), hostileTar);
    expect(await unpackSnapshot({ cacheDir: cache })).toEqual(plain);
  });

  test('with a pin, an entry that is not the pinned archive is never used, and a damaged pinned one is dropped', async () => {
    const plain = await unpackSnapshot();
    const cache = freshCache();
    const d = dataDir(cache);
    mkdirSync(d, { recursive: true });
    // a well-formed entry for another archive (self-consistent name): not the pin, not read
    const other = tarBytes([
      { name: './', type: '5' },
      { name: './etc/conf', content: 'injected' },
    ]);
    writeFileSync(join(d, `${list[0].sha256}.${sha256Hex(other)}.tar`), other);
    // an entry under the pinned name whose bytes are not the pinned archive: deleted, decompressed again
    const p4 = pinned()[4];
    const fake = join(d, `${p4.sha256}.${p4.dataSha256}.tar`);
    writeFileSync(fake, other);
    expect(await unpackSnapshot({ cacheDir: cache }, pinned())).toEqual(plain);
    expect(readFileSync(fake).equals(other)).toBe(false); // replaced by the real archive
    expect(sha256Hex(readFileSync(fake))).toBe(p4.dataSha256);
  });

  test('a wrong data pin is an input error naming the package and both digests, on disk and index-only, cached or not', async () => {
    const wrong = '0'.repeat(64);
    for (const i of [0, 1, 2, 3]) {
      for (const indexOnly of [false, true]) {
        const r = await freshRoot();
        const root = indexOnly ? await createStagingRoot(r.root.dir + '-index', { indexOnly: true }) : r.root;
        const bad = { ...list[i], dataSha256: wrong };
        const err = await rejection(unpackDebs(root, [bad], { cacheDir: freshCache() }));
        expect(err.kind).toBe('input');
        expect(err.message).toMatch(
          new RegExp(
            `the data archive of .* decompresses to sha256 ${fsysSha(list[i].path)}, but the lock pins ${wrong}`,
          ),
        );
        expect(err.hint).toMatch(/mkimg lock/);
        expect(root.packages).toEqual([]);
        if (!indexOnly) sentinelIntact(r.sentinel);
      }
    }
  });
});

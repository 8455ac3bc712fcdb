#!/usr/bin/env node
// Packing benchmark (issue 2): build an image from a `files:` tree of ~100 MB in
// 5,000 files, beside GNU tar with reproducible flags piped to sha256sum, and
// beside `umoci repack` of the same tree. Run: node bench/pack.mjs [--runs N]
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prng, table, timeShell } from './lib.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const runs = Number(process.argv[process.argv.indexOf('--runs') + 1]) || 5;
const work = '/tmp/mkimg-bench-pack';
const tree = join(work, 'tree');
const FILES = 5000;
const TARGET = 100 * 1024 * 1024;

const marker = join(work, 'tree.done'); // outside the tree: the tree is pinned
if (!existsSync(marker)) {
  rmSync(work, { recursive: true, force: true });
  const rnd = prng(42);
  let total = 0;
  for (let i = 0; i < FILES; i++) {
    const dir = join(tree, `d${i % 50}`, `s${i % 7}`);
    mkdirSync(dir, { recursive: true });
    const size = Math.floor((TARGET / FILES) * (0.5 + (rnd() % 1000) / 1000));
    const buf = Buffer.allocUnsafe(size);
    for (let j = 0; j + 4 <= size; j += 4) buf.writeUInt32LE(rnd(), j);
    writeFileSync(join(dir, `f${i}.bin`), buf);
    total += size;
  }
  writeFileSync(marker, String(total));
}

writeFileSync(
  join(work, 'manifest.yaml'),
  `apiVersion: mkimg/v1\nname: bench/pack\nsourceDateEpoch: 1700000000\nfiles:\n  - src: tree/\n    dest: /data\nminimize: false\nlayering: {strategy: single}\ncompression: none\n`,
);
// Pin the tree (mkimg build refuses unpinned inputs); not timed.
execFileSync(process.execPath, [join(root, 'bin/mkimg.js'), 'lock', join(work, 'manifest.yaml')], { stdio: 'ignore' });
const out = join(work, 'out');
mkdirSync(out, { recursive: true });

const mkimg = `node ${join(root, 'bin/mkimg.js')} build ${join(work, 'manifest.yaml')} -o ${join(out, 'image.tar')} --work-dir ${out}`;
// Every tool starts from the same state: no output from an earlier run (umoci
// gets a fresh layout below). Otherwise mkimg's rename would also pay for
// freeing the previous 100 MB image, which the tar pipeline never writes.
const noImage = () => rmSync(join(out, 'image.tar'), { force: true });
// What a bare Node.js program doing only the I/O and digests takes (see pack-floor.mjs).
const floor = `node ${join(root, 'bench/pack-floor.mjs')} ${tree} ${join(out, 'floor.tar')}`;
const noFloor = () => rmSync(join(out, 'floor.tar'), { force: true });
const gnutar = `tar --sort=name --mtime=@1700000000 --owner=0 --group=0 --numeric-owner -C ${tree} -cf - . | sha256sum`;
// umoci: a fresh layout each run, the tree copied into the bundle's rootfs is the
// input (umoci repacks the rootfs directory), so only the repack is timed.
const layout = join(out, 'layout');
const bundle = join(out, 'bundle');
const prepareUmoci = () => {
  rmSync(layout, { recursive: true, force: true });
  rmSync(bundle, { recursive: true, force: true });
  execFileSync('umoci', ['init', '--layout', layout]);
  execFileSync('umoci', ['new', '--image', `${layout}:b`]);
  execFileSync('umoci', ['unpack', '--image', `${layout}:b`, bundle]);
  execFileSync('cp', ['-a', tree, join(bundle, 'rootfs', 'data')]);
};
const umoci = `umoci repack --image ${layout}:b ${bundle}`;

const tMk = timeShell(mkimg, { runs, before: noImage });
const tTar = timeShell(gnutar, { runs });
const tUm = timeShell(umoci, { runs, before: prepareUmoci });
const tFloor = timeShell(floor, { runs, before: noFloor });
noFloor();
console.log(`floor / tar: ${(tFloor / tTar).toFixed(2)}`);
console.log(
  `files: ${FILES}, bytes: ${execFileSync('du', ['-sb', tree], { encoding: 'utf8' }).split('\t')[0]}, runs: ${runs} (median)`,
);
console.log(
  table([
    ['tool', 'seconds', 'mkimg / tool'],
    ['mkimg build (files: tree, minimize: false)', tMk.toFixed(3), '1.00'],
    ['tar --sort=name … | sha256sum', tTar.toFixed(3), (tMk / tTar).toFixed(2)],
    ['umoci repack', tUm.toFixed(3), (tMk / tUm).toFixed(2)],
    [
      'bench/pack-floor.mjs (Node.js: walk, read, write, digests; no tar, SBOM, pins)',
      tFloor.toFixed(3),
      (tMk / tFloor).toFixed(2),
    ],
  ]),
);

#!/usr/bin/env node
// Compression and layering benchmark (issue 14): the python example (the
// shipped manifest, minimized) built with `compression: none`, `gzip` and
// `zstd` (default `layering: origin`), side by side in one run:
// - build time, gzip and zstd against none (median of --runs after a warm-up
//   round, interleaved; warm cache, and every layer compressed again; aim:
//   gzip <= 1.3x none);
// - each layer's size: uncompressed, mkimg gzip, `gzip -6` of the same layer
//   tar (aim: mkimg within 5%), mkimg zstd, `zstd -9` of the same tar;
// - the first build after a lock (the packages' root unpacked again, every
//   layer compressed), gzip and zstd against none;
// - push after an app edit: bytes a second `mkimg push` moves against the
//   first (full) push, to a loopback docker-registry.
// Needs `npm run build`, the host's Debian mirror (cold cache fill),
// docker-registry, gzip and zstd. Run: node bench/compress.mjs [--runs N] [--example python]
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { table, timeShell } from './lib.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const opt = (name, dflt) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : dflt);
const runs = Number(opt('--runs', 3)) || 3;
const example = opt('--example', 'python');
const work = '/tmp/mkimg-bench-compress';
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
const mkimg = (args, o = {}) =>
  execFileSync(process.execPath, [join(root, 'bin/mkimg.js'), ...args], { encoding: 'utf8', maxBuffer: 1 << 26, ...o });
const cache = join(work, 'cache');
const tmp = join(work, 'tmp');
mkdirSync(tmp);

// One copy of the example per compression (the manifest differs in one line; same lock).
// Copies keep their depth below a copy of keys/, which the manifests name relatively.
cpSync(join(root, 'keys'), join(work, 'keys'), { recursive: true });
const copies = {};
for (const c of ['none', 'gzip', 'zstd']) {
  const dir = join(work, 'examples', `${example}-${c}`);
  cpSync(join(root, 'examples', example), dir, { recursive: true });
  const m = join(dir, 'manifest.yaml');
  writeFileSync(m, readFileSync(m, 'utf8').replace(/\nlock:/, `\ncompression: ${c}\nlock:`));
  copies[c] = m;
}
const build = (c, out) =>
  JSON.parse(mkimg(['build', copies[c], '-o', out, '--cache-dir', cache, '--work-dir', tmp, '--json']));
const built = {};
for (const c of ['none', 'gzip', 'zstd']) built[c] = build(c, join(work, `${c}.tar`)); // fills the cache, untimed

// Warm: the compressed layers of an earlier build are reused by diff_id (the
// package layer, after an app edit too). Cold layers: that part of the cache
// emptied before each run, so every layer is compressed again.
// The runs are interleaved (none, gzip, zstd; warm then cold; one round after another), so that
// a slower minute of this shared machine weighs on every column alike; the first round warms up.
const samples = {};
// "Cold": this compression's cached blobs dropped first (the other compressions' stay for their warm runs).
const dropLayers = (c) => () => {
  const dir = join(cache, 'layers');
  for (const name of existsSync(dir) ? readdirSync(dir) : [])
    if (name.startsWith(`${c}-`)) rmSync(join(dir, name), { recursive: true, force: true });
};
// "First": the first build after `mkimg lock` (which fetches the .debs and their data archives
// into the cache): the packages' root is unpacked (and byte-compiled) again, every layer compressed.
const dropRootAndLayers = (c) => () => {
  rmSync(join(cache, 'roots'), { recursive: true, force: true });
  dropLayers(c)();
};
for (let round = 0; round <= runs; round++) {
  for (const c of ['none', 'gzip', 'zstd']) {
    const cmd = `${process.execPath} ${join(root, 'bin/mkimg.js')} build ${copies[c]} -o ${join(work, `t-${c}.tar`)} --cache-dir ${cache} --work-dir ${tmp}`;
    for (const [kind, before] of [
      ['warm', undefined],
      ['cold', dropLayers(c)],
      ['first', dropRootAndLayers(c)],
    ]) {
      const t = timeShell(cmd, { runs: 1, before, warmup: false });
      if (round > 0) (samples[`${kind} ${c}`] ??= []).push(t);
    }
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const time = {};
const cold = {};
const first = {};
for (const c of ['none', 'gzip', 'zstd']) {
  time[c] = median(samples[`warm ${c}`]);
  cold[c] = median(samples[`cold ${c}`]);
  first[c] = median(samples[`first ${c}`]);
}
console.log(`build of examples/${example} (warm package cache, median of ${runs}):`);
console.log(
  table([
    [
      'compression',
      'seconds',
      'ratio to none',
      'layers compressed again: seconds',
      'ratio to none',
      'first build after a lock: seconds',
      'ratio to none',
      'image tar bytes',
    ],
    ...['none', 'gzip', 'zstd'].map((c) => [
      c,
      time[c].toFixed(2),
      (time[c] / time.none).toFixed(2),
      cold[c].toFixed(2),
      (cold[c] / cold.none).toFixed(2),
      first[c].toFixed(2),
      (first[c] / first.none).toFixed(2),
      statSync(join(work, `${c}.tar`)).size,
    ]),
  ]),
);

// Layer sizes against the reference tools on the same layer tars.
const layout = join(work, 'layout-none');
mkdirSync(layout);
execFileSync('tar', ['-xf', join(work, 'none.tar'), '-C', layout]);
const rows = [['layer', 'uncompressed', 'mkimg gzip', 'gzip -6', 'mkimg/gzip', 'mkimg zstd', 'zstd -9', 'mkimg/zstd']];
const sum = [0, 0, 0, 0, 0];
built.none.layers.forEach((l, i) => {
  const file = join(layout, 'blobs/sha256', l.digest.slice(7));
  const g6 = execFileSync('sh', ['-c', `gzip -6n < ${file} | wc -c`], { encoding: 'utf8' }).trim() * 1;
  const z9 = execFileSync('sh', ['-c', `zstd -q -9 -c < ${file} | wc -c`], { encoding: 'utf8' }).trim() * 1;
  const mg = built.gzip.layers[i].size;
  const mz = built.zstd.layers[i].size;
  [l.size, mg, g6, mz, z9].forEach((v, k) => (sum[k] += v));
  rows.push([i, l.size, mg, g6, (mg / g6).toFixed(3), mz, z9, (mz / z9).toFixed(3)]);
});
rows.push(['all', sum[0], sum[1], sum[2], (sum[1] / sum[2]).toFixed(3), sum[3], sum[4], (sum[3] / sum[4]).toFixed(3)]);
console.log('\nlayer sizes (bytes):');
console.log(table(rows));

// Push after an app edit.
const port = await new Promise((res) => {
  const s = createServer();
  s.listen(0, '127.0.0.1', () => {
    const p = s.address().port;
    s.close(() => res(p));
  });
});
const storage = join(work, 'registry');
mkdirSync(storage);
writeFileSync(
  join(work, 'registry.yml'),
  `version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: ${storage}\nhttp:\n  addr: 127.0.0.1:${port}\nlog:\n  level: error\n`,
);
const registry = spawn('docker-registry', ['serve', join(work, 'registry.yml')], { stdio: 'ignore' });
try {
  for (let i = 0; i < 100; i++) {
    try {
      execFileSync('sh', ['-c', `exec 3<>/dev/tcp/127.0.0.1/${port}`], { shell: '/bin/bash', stdio: 'ignore' });
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const ref = `127.0.0.1:${port}/bench/${example}:1`;
  const first = JSON.parse(mkimg(['push', join(work, 'gzip.tar'), ref, '--json']));
  const appDir = join(dirname(copies.gzip), 'app');
  const appFile = execFileSync('find', [appDir, '-type', 'f'], { encoding: 'utf8' }).trim().split('\n').sort()[0];
  writeFileSync(appFile, readFileSync(appFile, 'utf8') + '\n# edited\n');
  // Re-pin only the files: input (a full `mkimg lock` would also move the
  // packages to the mirror's newest versions): lock a scratch copy, take its pin.
  const scratch = join(work, 'examples', `${example}-relock`);
  cpSync(dirname(copies.gzip), scratch, { recursive: true });
  mkimg(['lock', join(scratch, 'manifest.yaml'), '--cache-dir', cache]);
  const pinOf = (m) =>
    [
      ...readFileSync(m, 'utf8')
        .split('\n  files:\n')[1]
        .matchAll(/sha256: "?([0-9a-f]{64})/g),
    ].map((x) => x[1]);
  const [oldPins, newPins] = [pinOf(copies.gzip), pinOf(join(scratch, 'manifest.yaml'))];
  let text = readFileSync(copies.gzip, 'utf8');
  oldPins.forEach((p, i) => (text = text.replace(p, newPins[i])));
  writeFileSync(copies.gzip, text);
  build('gzip', join(work, 'gzip-edited.tar'));
  const second = JSON.parse(mkimg(['push', join(work, 'gzip-edited.tar'), ref, '--json']));
  console.log(
    `\npush (gzip) to a loopback docker-registry, then again after editing ${appFile.slice(appDir.length + 1)}:`,
  );
  console.log(
    table([
      ['push', 'blobs uploaded', 'blobs skipped', 'bytes uploaded'],
      ['first (full)', first.blobsUploaded, first.blobsSkipped, first.bytesUploaded],
      ['after the edit', second.blobsUploaded, second.blobsSkipped, second.bytesUploaded],
      ['ratio', '', '', (second.bytesUploaded / first.bytesUploaded).toFixed(3)],
    ]),
  );
} finally {
  registry.kill();
}

#!/usr/bin/env node
// The edit–build loop (issue 16), python example, warm cache, side by side in
// one run:
//   (a) a warm minimized build (nothing changed);
//   (b) edit one app file, `mkimg lock` (re-pins files: offline), `mkimg build`;
//   (c) edit one app file, `mkimg build --repin`;
//   (d) edit one app file while `mkimg build --watch` runs: from the edit to the
//       image written (its JSON line), the 0.1 s it waits for the edit to settle included;
// next to the same manifest with `minimize: false` (warm) and to
// `mmdebstrap --variant=extract` of the same pinned packages from a local
// repository of exactly those .debs (its no-network, warm equivalent; see
// bench/build.mjs). Aims: (b) <= 1.0 s and <= 0.4x mmdebstrap; (a) <= 1.5x
// the `minimize: false` build. Also prints the floor of (b) that is not
// mkimg's own work (Node.js start-ups, the checks' own run time). Each edit changes the file's content, so every
// (b) and (c) run really re-pins and rebuilds.
// Needs `npm run build`, mmdebstrap, dpkg-scanpackages, the host mirror for
// the first (untimed) lock and fill.
// Run: node bench/loop.mjs [--runs N]
import { execFileSync, spawn } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { localDebRepo, mmdebstrapExtract, table, timeShell } from './lib.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const opt = (name, dflt) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : dflt);
const runs = Number(opt('--runs', 5)) || 5;
const mode = process.getuid() === 0 ? 'root' : 'unshare';
if (!existsSync(join(root, 'dist/cli/main.js'))) {
  console.error('bench/loop.mjs: run `npm run build` first');
  process.exit(2);
}

const work = '/tmp/mkimg-bench-loop';
rmSync(work, { recursive: true, force: true });
const proj = join(work, 'python');
cpSync(join(root, 'examples/python'), proj, { recursive: true });
const tmp = join(work, 'tmp');
const out = join(work, 'out');
const cache = join(work, 'cache');
for (const d of [tmp, out]) mkdirSync(d, { recursive: true });

const manifest = join(proj, 'manifest.yaml');
writeFileSync(manifest, readFileSync(manifest, 'utf8').replaceAll('../../keys/', `${root}/keys/`));
const unminimized = join(proj, 'unminimized.yaml');
const mkimg = `${process.execPath} ${join(root, 'bin/mkimg.js')}`;
const sh = (cmd) => execFileSync('bash', ['-c', cmd], { stdio: ['ignore', 'ignore', 'inherit'] });

// Untimed: a full lock (records the resolution digest), the unminimized copy, the warm fill.
sh(`${mkimg} lock ${manifest} --full --cache-dir ${cache}`);
writeFileSync(
  unminimized,
  readFileSync(manifest, 'utf8').replace(/^minimize:\n(?:(?:[ #].*)?\n)*/m, 'minimize: false\n'),
);
sh(`${mkimg} lock ${unminimized} --cache-dir ${cache}`);
const build = (m, o, extra = '') =>
  `${mkimg} build ${m} -o ${join(out, o)} --cache-dir ${cache} --work-dir ${tmp}${extra}`;
sh(build(manifest, 'fill.tar'));
sh(build(unminimized, 'fill-nomin.tar'));

const lock = parse(readFileSync(manifest, 'utf8')).lock;
const mm = mmdebstrapExtract({
  pins: lock.packages,
  epoch: parse(readFileSync(manifest, 'utf8')).sourceDateEpoch,
  tmp,
  mode,
  aptLines: [localDebRepo(lock.packages, cache, join(work, 'repo'))],
  output: join(out, 'mm.tar'),
});

// An edit: the app file gets a line it did not have (a counter), before each timed run.
const appFile = join(proj, 'app', 'main.py');
let n = 0;
const edit = () => appendFileSync(appFile, `# edit ${++n}\n`);

// The unchanged builds first: the edits below change app/ for every manifest sharing it.
const warm = timeShell(build(manifest, 'a.tar'), { runs });
const nomin = timeShell(build(unminimized, 'nomin.tar'), { runs });
const mmdebstrap = timeShell(mm, { runs });
const lockBuild = timeShell(`${mkimg} lock ${manifest} --cache-dir ${cache} && ${build(manifest, 'b.tar')}`, {
  runs,
  before: edit,
});
const repin = timeShell(build(manifest, 'c.tar', ' --repin'), { runs, before: edit });
// The floor of (b) that is not mkimg's own work: Node.js starts twice (lock, build), and the
// checks run once, side by side (a warm build whose keep set is the last one's takes one round). A check run alone is
// measured with tracer/mkimg-run on the built image (the same sandbox, untraced, its layers
// cached after the untimed first run).
const nodeStart = timeShell(`${process.execPath} -e 0`, { runs });
const run = (args) =>
  `${join(root, 'tracer/mkimg-run')} --cache-dir ${join(work, 'run-cache')} ${join(out, 'a.tar')} ${args}`;
sh(`${run('--self-test')} >/dev/null`); // untimed: unpacks the image into the run cache
const checks = timeShell(
  `${run('--self-test')} >/dev/null & ${run('2024-01-01T12:00:00 Europe/Paris')} >/dev/null & wait`,
  { runs },
);
const floor = 2 * nodeStart + checks;

// (d): one `build --watch` process; each run is an edit and the wait for the build it starts.
const watcher = spawn(
  process.execPath,
  [
    join(root, 'bin/mkimg.js'),
    'build',
    manifest,
    '-o',
    join(out, 'd.tar'),
    '--cache-dir',
    cache,
    '--work-dir',
    tmp,
    '--watch',
    '--json',
  ],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
const results = [];
let pending = '';
let wake = () => {};
watcher.stdout.on('data', (d) => {
  pending += d;
  for (let i; (i = pending.indexOf('\n')) >= 0; pending = pending.slice(i + 1)) {
    results.push(JSON.parse(pending.slice(0, i)));
    wake();
  }
});
const nextResult = (count) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('bench/loop.mjs: no result from build --watch in 60 s')), 60_000);
    wake = () => {
      if (results.length > count) {
        clearTimeout(timer);
        resolve(results[count]);
      }
    };
    wake();
  });
await nextResult(0); // the first build, untimed
const watched = [];
for (let i = 0; i <= runs; i++) {
  const before = results.length;
  execFileSync('sync'); // as timeShell does before each run
  const started = performance.now();
  edit();
  const r = await nextResult(before);
  if (r.error) throw new Error(`bench/loop.mjs: build --watch failed: ${r.error.message}`);
  if (i > 0) watched.push((performance.now() - started) / 1000); // the first run warms up
}
watcher.kill('SIGTERM');
const watch = watched.sort((a, b) => a - b)[Math.floor(watched.length / 2)];
const t = { warm, nomin, mmdebstrap, lockBuild, repin, watch };
const s = (x) => `${x.toFixed(2)} s`;
console.log(`python example (${lock.packages.length} packages), warm cache, median of ${runs} runs (2 cores)\n`);
console.log(
  table([
    ['step', 'time', 'against minimize: false', 'against mmdebstrap --variant=extract'],
    [
      '(a) minimized build, nothing changed',
      s(t.warm),
      `${(t.warm / t.nomin).toFixed(2)}x (aim <= 1.5x)`,
      `${(t.warm / t.mmdebstrap).toFixed(2)}x`,
    ],
    [
      '(b) edit app file + mkimg lock + mkimg build',
      s(t.lockBuild),
      `${(t.lockBuild / t.nomin).toFixed(2)}x`,
      `${(t.lockBuild / t.mmdebstrap).toFixed(2)}x (aim <= 0.4x, and <= 1.0 s)`,
    ],
    [
      '(c) edit app file + mkimg build --repin',
      s(t.repin),
      `${(t.repin / t.nomin).toFixed(2)}x`,
      `${(t.repin / t.mmdebstrap).toFixed(2)}x`,
    ],
    [
      '(d) edit app file, mkimg build --watch running (edit to image written)',
      s(t.watch),
      `${(t.watch / t.nomin).toFixed(2)}x`,
      `${(t.watch / t.mmdebstrap).toFixed(2)}x`,
    ],
    ['mkimg build, minimize: false', s(t.nomin), '1.00x', `${(t.nomin / t.mmdebstrap).toFixed(2)}x`],
    ['mmdebstrap --variant=extract, same pins, local repository', s(t.mmdebstrap), '', '1.00x'],
  ]),
);
console.log(
  `\nfloor of (b) outside mkimg's own work: 2 x node -e 0 (${s(nodeStart)}) + both checks side by side once ` +
    `(${s(checks)}) = ${s(floor)}; mkimg's own part of (b): ${s(t.lockBuild - floor)}`,
);
rmSync(work, { recursive: true, force: true });

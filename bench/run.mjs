#!/usr/bin/env node
// mkimg run vs runc run vs podman run, side by side in one run. A script, not
// a test: it prints a table of medians.
//
//   node bench/run.mjs [--runs N]
//
// warm: the static example (busybox echo), start to exit, layers already in
//   mkimg's cache, through the CLI (`mkimg run`) and its native fast path
//   (`tracer/mkimg-run`); against `node -e 0` (Node.js's own start-up, which mkimg
//   pays), `runc run` of the same image unpacked by umoci (process.terminal
//   false, no rlimits/cgroups), and `podman run --rm` of it.
// cold: the python example (`--self-test`), the cache emptied before each run
//   (layer unpack + run); against `tar -x` of its layer + `runc run` of that
//   bundle.
// Needs the host's Debian mirror (builds the two examples), umoci, runc, podman.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { table, timeShell } from './lib.mjs';

const PROJECT = fileURLToPath(new URL('..', import.meta.url));
const MKIMG = join(PROJECT, 'bin', 'mkimg.js');
const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 10;
const work = mkdtempSync(join(tmpdir(), 'mkimg-bench-run-'));
const cache = join(work, 'cache');
const q = (s) => `'${s.replace(/'/g, `'\\''`)}'`;

function build(name) {
  const out = join(work, `${name}.tar`);
  execFileSync(
    process.execPath,
    [MKIMG, 'build', join(PROJECT, 'examples', name, 'manifest.yaml'), '-o', out, '--cache-dir', cache],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  return out;
}

/** umoci-unpacked runc bundle of an image tar, config adapted as test/helpers/runc.ts does. */
function bundle(image, name, args) {
  const layout = join(work, `${name}-layout`);
  mkdirSync(layout);
  execFileSync('tar', ['-xf', image, '-C', layout]);
  const b = join(work, `${name}-bundle`);
  execFileSync('umoci', ['unpack', '--image', `${layout}:1.0`, b], { stdio: 'ignore' });
  adapt(b, args);
  return { layout, bundle: b };
}

function adapt(b, args) {
  const cfgPath = join(b, 'config.json');
  const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
  delete cfg.process.rlimits;
  delete cfg.linux.resources;
  delete cfg.linux.cgroupsPath;
  cfg.process.terminal = false;
  if (args) cfg.process.args = args;
  writeFileSync(cfgPath, JSON.stringify(cfg));
}

const ms = (s) => `${(s * 1000).toFixed(0)} ms`;
const rows = [['measure', 'time (median of ' + RUNS + ')']];
try {
  const staticTar = build('static');
  const pythonTar = build('python');
  const st = bundle(staticTar, 'static');
  execFileSync(process.execPath, [MKIMG, 'run', '--cache-dir', cache, staticTar], { stdio: 'ignore' });

  const node0 = timeShell(`${q(process.execPath)} -e 0`, { runs: RUNS });
  const mk = timeShell(`${q(process.execPath)} ${q(MKIMG)} run --cache-dir ${q(cache)} ${q(staticTar)} >/dev/null`, {
    runs: RUNS,
  });
  const fast = timeShell(
    `${q(join(PROJECT, 'tracer', 'mkimg-run'))} --cache-dir ${q(cache)} ${q(staticTar)} >/dev/null`,
    { runs: RUNS },
  );
  const runc = timeShell(
    `runc run --bundle ${q(st.bundle)} bench-run-$$ >/dev/null; runc delete -f bench-run-$$ 2>/dev/null || true`,
    { runs: RUNS },
  );
  let podman;
  try {
    execFileSync('podman', ['load', '-i', staticTar], { stdio: 'ignore' });
    podman = timeShell(
      `podman run --rm --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 mkimg-examples/static:1.0 >/dev/null`,
      { runs: Math.min(RUNS, 5) },
    );
  } catch (e) {
    podman = undefined;
    console.error(`podman run: not measured here (${String(e.message).split('\n')[0]})`);
  }
  rows.push(['warm: node -e 0', ms(node0)]);
  rows.push(['warm: runc run (static)', ms(runc)]);
  rows.push(['warm: mkimg run (static)', ms(mk)]);
  rows.push(['warm: tracer/mkimg-run (static)', ms(fast)]);
  if (podman !== undefined) rows.push(['warm: podman run (static)', ms(podman)]);
  rows.push([
    'warm: aim node + 1.5x runc',
    `${ms(node0 + 1.5 * runc)} → ${mk <= node0 + 1.5 * runc ? 'met' : 'missed'}`,
  ]);
  if (podman !== undefined)
    rows.push([
      'warm: mkimg run / podman',
      `${(mk / podman).toFixed(2)}x (aim <= 0.20) → ${mk <= podman / 5 ? 'met' : 'missed'}`,
    ]);
  if (podman !== undefined)
    rows.push([
      'warm: mkimg-run / podman',
      `${(fast / podman).toFixed(3)}x (aim <= 0.20) → ${fast <= podman / 5 ? 'met' : 'missed'}`,
    ]);
  rows.push(['warm: mkimg-run / runc run', `${(fast / runc).toFixed(2)}x`]);

  // cold: python
  const py = bundle(pythonTar, 'python', ['/usr/bin/python3.11', '/app/main.py', '--self-test']);
  const index = JSON.parse(readFileSync(join(py.layout, 'index.json'), 'utf8'));
  const manifest = JSON.parse(
    readFileSync(join(py.layout, 'blobs', 'sha256', index.manifests[0].digest.slice(7)), 'utf8'),
  );
  const layers = manifest.layers.map((l) => join(py.layout, 'blobs', 'sha256', l.digest.slice(7)));
  const rootfs = join(py.bundle, 'rootfs');
  const clean = () =>
    rmSync(join(cache, 'rootfs'), { recursive: true, force: true }) ||
    rmSync(join(cache, 'run'), { recursive: true, force: true });
  const mkCold = timeShell(
    `${q(process.execPath)} ${q(MKIMG)} run --cache-dir ${q(cache)} ${q(pythonTar)} --self-test >/dev/null`,
    { runs: Math.min(RUNS, 5), before: clean },
  );
  const tarRunc = timeShell(
    `rm -rf ${q(rootfs)} && mkdir ${q(rootfs)} && ${layers.map((l) => `tar -xf ${q(l)} -C ${q(rootfs)}`).join(' && ')} && runc run --bundle ${q(py.bundle)} bench-py-$$ >/dev/null; runc delete -f bench-py-$$ 2>/dev/null || true`,
    { runs: Math.min(RUNS, 5) },
  );
  const mkWarmPy = timeShell(
    `${q(process.execPath)} ${q(MKIMG)} run --cache-dir ${q(cache)} ${q(pythonTar)} --self-test >/dev/null`,
    { runs: Math.min(RUNS, 5) },
  );
  rows.push(['cold: tar -x + runc run (python)', ms(tarRunc)]);
  rows.push([
    'cold: mkimg run, empty cache (python)',
    `${ms(mkCold)} → ${(mkCold / tarRunc).toFixed(2)}x (aim <= 1.2x) ${mkCold <= 1.2 * tarRunc ? 'met' : 'missed'}`,
  ]);
  rows.push(['warm: mkimg run (python)', ms(mkWarmPy)]);
  console.log(table(rows));
} finally {
  spawnSync('podman', ['rmi', '-f', 'mkimg-examples/static:1.0'], { stdio: 'ignore' });
  rmSync(work, { recursive: true, force: true });
}

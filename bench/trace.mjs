#!/usr/bin/env node
// Tracing overhead: untraced sandbox vs mkimg-trace vs strace (ptrace on every
// syscall) vs strace --seccomp-bpf, on three workloads run inside a root built
// from the host's files. A script, not a test: it prints a table of medians.
//
//   node bench/trace.mjs [--runs N]
//
// Needs: make + cc (builds tracer/), strace, python3.11 on the host (Debian 12).
import { execFileSync, spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  readFileSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  copyFileSync,
  chmodSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';

const PROJECT = fileURLToPath(new URL('..', import.meta.url));
const TRACER = join(PROJECT, 'tracer', 'mkimg-trace');
const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 5;

const MODULES = [
  'json',
  're',
  'collections',
  'datetime',
  'decimal',
  'hashlib',
  'base64',
  'csv',
  'pathlib',
  'argparse',
  'textwrap',
  'fractions',
  'statistics',
  'itertools',
  'functools',
  'typing',
  'dataclasses',
  'enum',
  'heapq',
  'bisect',
  'random',
  'string',
  'struct',
  'zlib',
  'uuid',
  'email.message',
  'html',
  'urllib.parse',
  'tempfile',
  'logging',
];

function copyHostPath(root, hostPath) {
  const parts = hostPath.split('/').filter(Boolean);
  let cur = '/';
  for (let hops = 0; parts.length; ) {
    const next = posix.join(cur, parts.shift());
    const st = lstatSync(next);
    const dst = root + next;
    if (st.isSymbolicLink()) {
      const t = readlinkSync(next);
      if (!existsSync(dst)) {
        try {
          lstatSync(dst);
        } catch {
          mkdirSync(dirname(dst), { recursive: true });
          symlinkSync(t, dst);
        }
      }
      if (++hops > 40) throw new Error('symlink loop');
      parts.unshift(...t.split('/').filter(Boolean));
      if (t.startsWith('/')) cur = '/';
      continue;
    }
    if (st.isDirectory()) mkdirSync(dst, { recursive: true });
    else if (st.isFile() && parts.length === 0 && !existsSync(dst)) {
      mkdirSync(dirname(dst), { recursive: true });
      copyFileSync(next, dst);
      chmodSync(dst, st.mode & 0o7777);
    }
    cur = next;
  }
}

function closure(p) {
  const out = spawnSync('ldd', [p], { encoding: 'utf8' }).stdout ?? '';
  return [...out.matchAll(/(?:=>\s+|^\s*)(\/\S+)/gm)].map((m) => m[1]);
}

function buildRoot() {
  const root = mkdtempSync(join(tmpdir(), 'mkimg-bench-root-'));
  for (const d of ['usr/bin', 'usr/lib', 'usr/lib64', 'usr/sbin', 'etc', 'tmp', 'app'])
    mkdirSync(join(root, d), { recursive: true });
  for (const [l, t] of [
    ['bin', 'usr/bin'],
    ['lib', 'usr/lib'],
    ['lib64', 'usr/lib64'],
    ['sbin', 'usr/sbin'],
  ])
    symlinkSync(t, join(root, l));
  for (const p of ['/usr/bin/dash', '/usr/bin/find', '/usr/bin/true', '/usr/bin/python3.11']) {
    copyHostPath(root, p);
    for (const l of closure(p)) copyHostPath(root, l);
  }
  symlinkSync('dash', join(root, 'usr/bin/sh'));
  cpSync('/usr/lib/python3.11', join(root, 'usr/lib/python3.11'), {
    recursive: true,
    filter: (s) => !/\/(dist-packages|site-packages|test|idlelib|tkinter|turtledemo|ensurepip)(\/|$)/.test(s),
  });
  for (const f of readdirSync('/usr/lib/python3.11/lib-dynload'))
    for (const l of closure('/usr/lib/python3.11/lib-dynload/' + f)) copyHostPath(root, l);
  writeFileSync(join(root, 'app/imports.py'), `import ${MODULES.join(', ')}\n`);
  chmodSync(root, 0o755);
  return root;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Children's CPU time so far (user+system, ms) from /proc/self/stat: cutime + cstime. */
function childCpuMs() {
  const f = readFileSync('/proc/self/stat', 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[13]) + Number(rest[14])) * 10; // USER_HZ = 100
}

function once(cmd, args) {
  const c0 = childCpuMs();
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { TMPDIR: tmpdir() } });
  const wall = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return { wall, cpu: childCpuMs() - c0 };
}

execFileSync('make', ['-s', '-C', join(PROJECT, 'tracer')], { stdio: 'inherit' });
if (!existsSync('/usr/bin/python3.11')) {
  console.error('bench/trace.mjs needs /usr/bin/python3.11');
  process.exit(2);
}
const root = buildRoot();
const work = mkdtempSync(join(tmpdir(), 'mkimg-bench-'));
try {
  const workloads = [
    [
      'python: import 30 stdlib modules',
      ['/usr/bin/python3.11', '-c', `import sys; sys.dont_write_bytecode=True; exec(open('/app/imports.py').read())`],
    ],
    ['find /usr', ['/usr/bin/find', '/usr']],
    ['300 fork+exec', ['/bin/sh', '-c', 'i=0; while [ $i -lt 300 ]; do /usr/bin/true; i=$((i+1)); done']],
  ];
  const sandbox = (mode) => [
    '--root',
    root,
    '--timeout',
    '300',
    '--env',
    'PATH=/usr/bin',
    '--stdout',
    '/dev/null',
    ...(mode === 'trace' ? ['--events', join(work, 'ev.jsonl')] : ['--no-trace']),
    '--',
  ];
  const runners = [
    ['untraced (sandbox --no-trace)', (w) => [TRACER, [...sandbox('none'), ...w]]],
    ['mkimg-trace', (w) => [TRACER, [...sandbox('trace'), ...w]]],
    [
      'strace -f %file,%process',
      (w) => [
        'strace',
        ['-f', '-qq', '-o', '/dev/null', '-e', 'trace=%file,%process', TRACER, ...sandbox('none'), ...w],
      ],
    ],
    [
      'strace -f --seccomp-bpf',
      (w) => [
        'strace',
        [
          '-f',
          '-qq',
          '--seccomp-bpf',
          '-o',
          '/dev/null',
          '-e',
          'trace=%file,%process',
          TRACER,
          ...sandbox('none'),
          ...w,
        ],
      ],
    ],
  ];
  const rows = [['workload', ...runners.map(([n]) => n)]];
  for (const [wname, w] of workloads) {
    const cmds = runners.map(([, mk]) => mk(w));
    for (const [cmd, args] of cmds) once(cmd, args); // warm the page cache
    const wall = cmds.map(() => []);
    const cpu = cmds.map(() => []);
    // Interleave the runners so load from other processes hits them alike.
    for (let i = 0; i < RUNS; i++) {
      cmds.forEach(([cmd, args], j) => {
        const r = once(cmd, args);
        wall[j].push(r.wall);
        cpu[j].push(r.cpu);
      });
    }
    const mw = wall.map(median);
    const mc = cpu.map(median);
    rows.push([
      wname,
      ...mw.map(
        (m, i) =>
          `${m.toFixed(0)} ms${i ? ` (${(m / mw[0]).toFixed(2)}x)` : ''} / cpu ${mc[i].toFixed(0)} ms${i ? ` (${(mc[i] / Math.max(mc[0], 1)).toFixed(2)}x)` : ''}`,
      ),
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  console.log(
    `median of ${RUNS} interleaved runs: wall time / CPU time of the process tree; ratios against the untraced sandbox run`,
  );
  for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i])).join(' | '));
} finally {
  rmSync(root, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
}

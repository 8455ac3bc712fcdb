/**
 * Test helpers for the tracer and the minimizer: build the tracer, compile C
 * programs with gcc, build a staging root by copying host files with their
 * dynamic-library closure (merged /usr as on the Debian 12 host), and index a
 * directory into a StagingRoot.
 */
import { execFileSync } from 'node:child_process';
import {
  cpSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  chmodSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StageEntry, StagingRoot } from '../../src/stage/types.js';
import { stagingRootAt } from '../../src/stage/root.js';
import { runBundle, type RunResult } from './runc.js';

export const PROJECT = fileURLToPath(new URL('../..', import.meta.url));
export const TRACER = join(PROJECT, 'tracer', 'mkimg-trace');

export function buildTracer(): string {
  execFileSync('make', ['-s', '-C', join(PROJECT, 'tracer')], { stdio: 'inherit' });
  return TRACER;
}

export function tempDir(prefix = 'mkimg-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Copy one host path into root, recreating every symlink met on the way (host layout). */
export function copyHostPath(root: string, hostPath: string): void {
  const parts = hostPath.split('/').filter(Boolean);
  let cur = '/';
  let hops = 0;
  while (parts.length) {
    const c = parts.shift()!;
    const next = posix.join(cur, c);
    const st = lstatSync(next);
    const dst = root + next;
    if (st.isSymbolicLink()) {
      const t = readlinkSync(next);
      if (!existsSync(dst) && !isLink(dst)) {
        mkdirSync(dirname(dst), { recursive: true });
        symlinkSync(t, dst);
      }
      if (++hops > 40) throw new Error('symlink loop at ' + next);
      parts.unshift(...t.split('/').filter(Boolean));
      cur = t.startsWith('/') ? '/' : cur;
      continue;
    }
    if (st.isDirectory()) {
      if (!existsSync(dst)) mkdirSync(dst, { recursive: true, mode: 0o755 });
    } else if (st.isFile() && parts.length === 0) {
      if (!existsSync(dst)) {
        mkdirSync(dirname(dst), { recursive: true });
        copyFileSync(next, dst);
        chmodSync(dst, st.mode & 0o7777);
      }
    }
    cur = next;
  }
}

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/** Host files a dynamically linked program needs (ldd), absolute paths. */
export function lddClosure(hostPath: string): string[] {
  let out = '';
  try {
    out = execFileSync('ldd', [hostPath], { encoding: 'utf8' });
  } catch {
    return [];
  }
  const paths = new Set<string>();
  for (const line of out.split('\n')) {
    const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s*(\/\S+)/.exec(line);
    if (m) paths.add(m[1]);
  }
  return [...paths];
}

/** Copy host programs or files and their library closure into root. */
export function copyWithClosure(root: string, hostPaths: string[]): void {
  for (const p of hostPaths) {
    copyHostPath(root, p);
    for (const lib of lddClosure(p)) copyHostPath(root, lib);
  }
}

/** A fresh root with Debian 12's merged-/usr layout. */
export function makeRoot(): string {
  const root = tempDir('mkimg-root-');
  for (const d of ['usr/bin', 'usr/lib', 'usr/lib64', 'usr/sbin', 'etc', 'tmp'])
    mkdirSync(join(root, d), { recursive: true, mode: 0o755 });
  chmodSync(join(root, 'tmp'), 0o1777);
  for (const [l, t] of [
    ['bin', 'usr/bin'],
    ['lib', 'usr/lib'],
    ['lib64', 'usr/lib64'],
    ['sbin', 'usr/sbin'],
  ])
    symlinkSync(t, join(root, l));
  writeFileSync(
    join(root, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n',
  );
  writeFileSync(join(root, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  return root;
}

/** Compile C source with gcc into root at image path dest. */
export function compileC(root: string, dest: string, source: string, flags: string[] = []): void {
  const dir = tempDir('mkimg-cc-');
  try {
    const src = join(dir, 'prog.c');
    writeFileSync(src, source);
    mkdirSync(dirname(root + dest), { recursive: true });
    execFileSync('gcc', ['-O1', '-o', root + dest, src, ...flags], { stdio: 'pipe' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Index a directory into a StagingRoot; hardlinked files: the first path (sorted) is the file, others hardlinks. */
export function scanRoot(dir: string, originOf: (p: string) => string = () => 'file:test'): StagingRoot {
  const entries = new Map<string, StageEntry>();
  const inodes = new Map<string, string>();
  const walk = (p: string): void => {
    const host = p === '/' ? dir : dir + p;
    const st = lstatSync(host);
    const base = { path: p, mode: st.mode & 0o7777, uid: 0, gid: 0, size: 0, origin: originOf(p) };
    if (st.isDirectory()) {
      entries.set(p, { ...base, type: 'dir' });
      for (const n of readdirSync(host).sort()) walk(p === '/' ? '/' + n : p + '/' + n);
    } else if (st.isSymbolicLink()) {
      entries.set(p, { ...base, mode: 0o777, type: 'symlink', linkTarget: readlinkSync(host) });
    } else if (st.isFile()) {
      const key = `${st.dev}:${st.ino}`;
      const first = st.nlink > 1 ? inodes.get(key) : undefined;
      if (first) entries.set(p, { ...base, type: 'hardlink', linkTarget: first });
      else {
        if (st.nlink > 1) inodes.set(key, p);
        entries.set(p, { ...base, type: 'file', size: st.size, hostPath: host });
      }
    }
  };
  walk('/');
  const root = stagingRootAt(dir);
  for (const [k, v] of entries) root.entries.set(k, v);
  return root;
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** Run a command under runc with dir as a read-only rootfs (config from `runc spec`, no rlimits/resources/cgroups). */
export function runcRun(
  rootfs: string,
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 60_000,
): RunResult {
  const bundle = tempDir('mkimg-runc-bundle-');
  try {
    execFileSync('runc', ['spec', '--bundle', bundle]);
    return runBundle(bundle, 'mkimg-min', timeoutMs, (cfg) => {
      cfg.process.args = args;
      cfg.process.env = Object.entries(env).map(([k, v]) => `${k}=${v}`);
      cfg.root = { path: rootfs, readonly: true };
    });
  } finally {
    rmSync(bundle, { recursive: true, force: true });
  }
}

export const PY_MODULES = [
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

/** Copy the host's python3.11 with its stdlib and the libraries of its extension modules into root; false if the host lacks it. */
export function addPython(root: string): boolean {
  if (!existsSync('/usr/bin/python3.11') || !existsSync('/usr/lib/python3.11/os.py')) return false;
  copyWithClosure(root, ['/usr/bin/python3.11']);
  cpSync('/usr/lib/python3.11', join(root, 'usr/lib/python3.11'), {
    recursive: true,
    filter: (src) => !/\/(dist-packages|site-packages|test|idlelib|tkinter|turtledemo|ensurepip)(\/|$)/.test(src),
  });
  const dyn = '/usr/lib/python3.11/lib-dynload';
  for (const f of readdirSync(dyn))
    if (f.endsWith('.so')) for (const lib of lddClosure(join(dyn, f))) copyHostPath(root, lib);
  return true;
}

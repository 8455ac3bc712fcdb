/**
 * The check sandbox holds against a hostile check, whoever runs mkimg: each
 * attempt of fixtures/escape.c (remount, sysctl, device nodes, the host's
 * disk, a host path, the chroot escape, namespaces, ptrace of its parent,
 * keys, bpf, perf, kexec, modules, a setuid binary) fails inside the sandbox,
 * traced or not, as root and as an unprivileged caller, and the host is
 * unchanged afterwards. A check that needs none of it still runs.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTracer, PROJECT, tempDir, TRACER } from '../helpers/tracer-root.js';

let work: string;
let root: string;
let marker: string;
let overcommit: string;

beforeAll(() => {
  overcommit = readFileSync('/proc/sys/vm/overcommit_ratio', 'utf8');
  buildTracer();
  work = tempDir('mkimg-escape-');
  chmodSync(work, 0o777); // the unprivileged caller's TMPDIR (scratch roots) and its events file
  root = join(work, 'root');
  for (const d of ['usr/bin', 'etc']) mkdirSync(join(root, d), { recursive: true });
  symlinkSync('usr/bin', join(root, 'bin'));
  const escape = join(root, 'usr/bin/escape');
  execFileSync('gcc', ['-static', '-O1', '-o', escape, join(PROJECT, 'test/trace/fixtures/escape.c')]);
  copyFileSync(escape, join(root, 'usr/bin/escape-setuid'));
  chmodSync(join(root, 'usr/bin/escape-setuid'), 0o4755); // setuid root on the host file itself
  copyFileSync('/bin/busybox', join(root, 'usr/bin/busybox'));
  // A file only root may read, as /etc/shadow in an image.
  writeFileSync(join(root, 'etc/secret'), 'root only\n', { mode: 0o600 });
  chmodSync(root, 0o755);
  // A host path the check must not create: inside the sandbox this folder does not exist.
  marker = join(work, 'host-marker');
});

afterAll(() => {
  // Should a regression let the check write the sysctl, the test fails and the host gets its value back.
  if (overcommit && readFileSync('/proc/sys/vm/overcommit_ratio', 'utf8') !== overcommit)
    writeFileSync('/proc/sys/vm/overcommit_ratio', overcommit);
  if (work) rmSync(work, { recursive: true, force: true });
});

const CALLERS = [
  { name: 'root', pre: [] as string[] },
  { name: 'an unprivileged user', pre: ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] },
];

function sandboxed(
  pre: string[],
  trace: boolean,
  args: string[],
  extra: string[] = [],
): { status: number | null; stdout: string; stderr: string } {
  const events = join(work, `events-${pre.length}-${trace}.jsonl`);
  const cmd = [
    ...pre,
    TRACER,
    '--root',
    root,
    ...(trace ? ['--events', events] : ['--no-trace']),
    '--timeout',
    '30',
    '--env',
    'PATH=/usr/bin',
    ...extra,
    '--',
    ...args,
  ];
  return spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', env: { TMPDIR: work } });
}

function hostState(): string {
  // What an escape would change: the root's files, a host sysctl, the host's mounts, the marker.
  return JSON.stringify({
    root: readdirSync(root, { recursive: true }).map(String).sort(),
    rootMtime: statSync(join(root, 'usr/bin')).mtimeMs,
    sysctl: readFileSync('/proc/sys/vm/overcommit_ratio', 'utf8'),
    mounts: readFileSync('/proc/self/mountinfo', 'utf8').split('\n').length,
    marker: existsSync(marker),
  });
}

const ATTEMPTS = [
  'remount-root-rw',
  'write-root',
  'write-sysctl',
  'write-sysrq',
  'mount-tmpfs',
  'mknod-char',
  'mknod-block',
  'mount-disk',
  'chroot-escape',
  'unshare-user',
  'unshare-mount',
  'setns',
  'ptrace-parent',
  'ptrace-init',
  'keyctl',
  'bpf',
  'perf-event-open',
  'kexec-load',
  'init-module',
  'open-by-handle',
  'settimeofday',
];

describe('the check sandbox against a hostile check', () => {
  for (const caller of CALLERS) {
    for (const trace of [true, false]) {
      it(`refuses every escape, run by ${caller.name}, ${trace ? 'traced' : 'untraced'}`, () => {
        const before = hostState();
        const r = sandboxed(caller.pre, trace, ['/usr/bin/escape', marker]);
        expect(r.stderr).toBe('');
        expect(r.status).toBe(0);
        const lines = new Map(
          r.stdout
            .trim()
            .split('\n')
            .map((l) => [l.split(' ')[0], l.slice(l.indexOf(' ') + 1)]),
        );
        for (const a of ATTEMPTS) expect(`${a} ${lines.get(a)}`).toMatch(new RegExp(`^${a} refused `));
        // Writing the host path "succeeds" only into the sandbox's own /tmp, or fails: never on the host.
        expect(hostState()).toBe(before);
      });
    }

    it(`gives a setuid-root binary no privilege, run by ${caller.name}`, () => {
      const before = hostState();
      const r = sandboxed(caller.pre, true, ['/usr/bin/escape-setuid', marker], ['--uid', '1000', '--gid', '1000']);
      expect(r.status).toBe(0);
      expect(r.stdout).toContain('euid 1000\n');
      expect(r.stdout).toMatch(/^setuid-0 refused /m);
      expect(r.stdout).toContain('euid-after 1000\n');
      for (const a of ATTEMPTS) expect(r.stdout).toMatch(new RegExp(`^${a} refused `, 'm'));
      expect(hostState()).toBe(before);
    });

    it(`still runs a check that needs none of it, run by ${caller.name}`, () => {
      const r = sandboxed(caller.pre, true, [
        '/usr/bin/busybox',
        'sh',
        '-c',
        'echo hello > /tmp/f && cat /tmp/f && busybox mkfifo /tmp/p && echo fifo',
      ]);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('hello\nfifo\n');
      expect(r.status).toBe(0);
    });
  }

  for (const trace of [true, false]) {
    it(`lets root inside read the image's root-only files, read-only, when the caller is root, ${trace ? 'traced' : 'untraced'}`, () => {
      // The root is bound idmapped: the host root's files are the program's root's, as in a container.
      const r = sandboxed([], trace, [
        '/usr/bin/busybox',
        'sh',
        '-c',
        'cat /etc/secret; stat -c "%u:%g %a" /etc/secret; echo x >> /etc/secret || echo refused',
      ]);
      expect(r.stdout).toBe('root only\n0:0 600\nrefused\n');
      expect(r.status).toBe(0);
      // Another user inside still cannot.
      const other = sandboxed(
        [],
        trace,
        ['/usr/bin/busybox', 'cat', '/etc/secret'],
        ['--uid', '1000', '--gid', '1000'],
      );
      expect(other.status).not.toBe(0);
      expect(other.stderr).toMatch(/Permission denied/);
      expect(readFileSync(join(root, 'etc/secret'), 'utf8')).toBe('root only\n');
    });
  }

  it('runs root inside as an unprivileged host id when the caller is root', () => {
    const r = sandboxed([], false, ['/usr/bin/busybox', 'cat', '/proc/self/uid_map', '/proc/self/gid_map']);
    expect(r.status).toBe(0);
    expect(
      r.stdout
        .trim()
        .split('\n')
        .map((l) => l.trim().split(/\s+/)),
    ).toEqual([
      ['0', '2147483648', '2147483647'],
      ['0', '2147483648', '2147483647'],
    ]);
  });
});

/**
 * The native tracer: sandbox properties and event recording, with real
 * programs compiled by gcc into a root built from the host's libraries.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import {
  readFileSync,
  readdirSync,
  rmSync,
  chmodSync,
  statSync,
  mkdirSync,
  writeFileSync,
  lstatSync,
  utimesSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runTraced } from '../../src/trace/run.js';
import { buildTracer, compileC, copyWithClosure, makeRoot, TRACER, tempDir } from '../helpers/tracer-root.js';

const NET = `
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
int main(int argc, char **argv) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET; a.sin_port = htons(atoi(argv[1])); a.sin_addr.s_addr = htonl(0x7f000001);
  int r = connect(s, (struct sockaddr *)&a, sizeof a);
  printf("connect=%d errno=%s\\n", r, r ? strerror(errno) : "0");
  int u = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un su = {0};
  su.sun_family = AF_UNIX; strcpy(su.sun_path, "/run/test.sock");
  connect(u, (struct sockaddr *)&su, sizeof su);
  return r == 0 ? 1 : 0;
}`;

const PATHS = `
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
static void *th(void *a) {
  (void)a;
  char *argv[] = {"/usr/bin/true-ish", "child", NULL};
  char *envp[] = {NULL};
  execve("/usr/bin/true-ish", argv, envp); /* exec from a non-leader thread */
  return NULL;
}
int main(int argc, char **argv) {
  if (argc > 1) { /* the exec'd child */
    access("/etc/from-child", F_OK);
    return 7;
  }
  int d = open("/usr/lib", O_RDONLY | O_DIRECTORY);
  struct stat st;
  fstatat(d, "relative/file", &st, 0);
  chdir("/usr/bin");
  access("cwd-relative", F_OK);
  DIR *dd = opendir("/etc");
  while (readdir(dd)) {}
  pid_t p = fork();
  if (p == 0) {
    pthread_t t;
    pthread_create(&t, NULL, th, NULL);
    pthread_join(t, NULL);
    _exit(99);
  }
  int s;
  waitpid(p, &s, 0);
  printf("child=%d\\n", WEXITSTATUS(s));
  return 0;
}`;

const FAMILY = `
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/xattr.h>
#include <unistd.h>
int main(void) {
  char buf[64]; struct statfs sf; struct stat st; struct statx stx;
  mkdir("/tmp/d", 0755);
  int d = open("/tmp/d", O_RDONLY | O_DIRECTORY);
  close(openat(d, "f", O_CREAT | O_WRONLY, 0644));
  struct open_how how = { .flags = O_RDONLY };
  long fd2 = syscall(SYS_openat2, d, "f", &how, sizeof how);
  symlinkat("f", d, "ln");
  linkat(d, "f", d, "hard", 0);
  renameat2(d, "hard", d, "moved", 0);
  readlinkat(d, "ln", buf, sizeof buf);
  fstatat(d, "ln", &st, AT_SYMLINK_NOFOLLOW);
  fchmodat(d, "f", 0600, 0);
  fchownat(d, "f", 0, 0, AT_SYMLINK_NOFOLLOW);
  utimensat(d, "f", NULL, 0);
  getxattr("/tmp/d/f", "user.x", buf, sizeof buf);
  lsetxattr("/tmp/d/ln", "user.x", "v", 1, 0);
  truncate("/tmp/d/f", 0);
  statfs("/tmp/d", &sf);
  faccessat(d, "f", R_OK, AT_EACCESS);
  int in = inotify_init();
  inotify_add_watch(in, "/tmp/d", IN_CREATE);
  unlinkat(d, "moved", 0);
  fchdir(d);
  mkdirat(AT_FDCWD, "sub", 0755);
  rmdir("sub");
  chmod("f", 0644);
  statx(d, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx);
  (void)fd2;
  return 0;
}`;

let root: string;
let work: string;
let server: Server;
let port: number;

beforeAll(async () => {
  buildTracer();
  root = makeRoot();
  work = tempDir('mkimg-tracer-work-');
  chmodSync(work, 0o777);
  copyWithClosure(root, [
    '/usr/bin/dash',
    '/usr/bin/env',
    '/usr/bin/cat',
    '/usr/bin/touch',
    '/usr/bin/hostname',
    '/usr/bin/sleep',
    '/usr/bin/ls',
    '/usr/bin/stat',
  ]);
  execFileSync('ln', ['-s', 'dash', join(root, 'usr/bin/sh')]);
  compileC(root, '/usr/bin/netcheck', NET);
  compileC(root, '/usr/bin/family', FAMILY);
  compileC(root, '/usr/bin/paths', PATHS, ['-pthread']);
  compileC(root, '/usr/bin/true-ish', PATHS, ['-pthread']);
  chmodSync(root, 0o755);
  server = createServer((c) => c.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  port = (server.address() as { port: number }).port;
});

afterAll(() => {
  server?.close();
  if (root) rmSync(root, { recursive: true, force: true });
  if (work) rmSync(work, { recursive: true, force: true });
});

function listing(dir: string): string[] {
  return readdirSync(dir, { recursive: true }).map(String).sort();
}

describe('sandbox', () => {
  it('fixes the hostname, gives exactly the given environment, and runs as pid 2 under a private init', async () => {
    const r = await runTraced({
      rootDir: root,
      args: ['/bin/sh', '-c', 'hostname; env; echo pid=$$'],
      env: { A: '1', PATH: '/usr/bin' },
      timeoutSeconds: 20,
      trace: true,
    });
    expect(r.exitCode).toBe(0);
    const lines = r.stdout.toString().trim().split('\n');
    expect(lines[0]).toBe('mkimg');
    expect(lines.slice(1, -1).sort()).toEqual(['A=1', 'PATH=/usr/bin', 'PWD=/']);
    expect(lines.at(-1)).toBe('pid=2');
  });

  it('keeps the root read-only and unchanged, with tmpfs /tmp and a minimal /dev', async () => {
    const before = listing(root);
    const mtime = statSync(root).mtimeMs;
    const r = await runTraced({
      rootDir: root,
      args: [
        '/bin/sh',
        '-c',
        'touch /usr/x 2>/dev/null && echo wrote; touch /tmp/ok && echo tmp-ok; ls /dev; cat /proc/1/comm',
      ],
      env: { PATH: '/usr/bin' },
      timeoutSeconds: 20,
      trace: true,
    });
    expect(r.exitCode).toBe(0);
    const out = r.stdout.toString();
    expect(out).not.toContain('wrote');
    expect(out).toContain('tmp-ok');
    for (const d of ['null', 'zero', 'full', 'random', 'urandom', 'tty']) expect(out.split('\n')).toContain(d);
    expect(out.trim().split('\n').at(-1)).toBe('mkimg-trace');
    expect(listing(root)).toEqual(before);
    expect(statSync(root).mtimeMs).toBe(mtime);
  });

  it("has no network: the host's listening 127.0.0.1 port is out of reach (the sandbox has its own loopback)", async () => {
    const r = await runTraced({
      rootDir: root,
      args: ['/usr/bin/netcheck', String(port)],
      env: {},
      timeoutSeconds: 20,
      trace: true,
    });
    // lo is up inside the sandbox's network namespace, so a check can reach a
    // server it started itself; the host's listener is not there.
    expect(r.stdout.toString()).toMatch(/^connect=-1 errno=Connection refused/);
    expect(r.exitCode).toBe(0);
    const unix = r.events.find((e) => e.sc === 'connect');
    expect(unix).toMatchObject({ path: '/run/test.sock', abs: '/run/test.sock' });
  });

  it('kills the whole tree on timeout (exit 124) and reports signals as 128+N', async () => {
    const t0 = Date.now();
    const r = await runTraced({
      rootDir: root,
      args: ['/bin/sh', '-c', 'sleep 100 & sleep 100; echo never'],
      env: { PATH: '/usr/bin' },
      timeoutSeconds: 1,
      trace: true,
    });
    expect(r.exitCode).toBe(124);
    expect(r.timedOut).toBe(true);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(r.stdout.toString()).toBe('');
    const k = await runTraced({
      rootDir: root,
      args: ['/bin/sh', '-c', 'kill -TERM $$'],
      env: {},
      timeoutSeconds: 10,
      trace: true,
    });
    expect(k.exitCode).toBe(128 + 15);
    const nf = await runTraced({ rootDir: root, args: ['/usr/bin/nope'], env: {}, timeoutSeconds: 10, trace: false });
    expect(nf.exitCode).toBe(127);
    expect(nf.tracerMessages).toContain('execve(/usr/bin/nope)');
  });

  it('passes stdin and exit codes through, with and without tracing', async () => {
    for (const trace of [true, false]) {
      const r = await runTraced({
        rootDir: root,
        args: ['/bin/sh', '-c', 'cat; exit 3'],
        env: {},
        stdin: 'hello\n',
        timeoutSeconds: 10,
        trace,
      });
      expect(r.exitCode).toBe(3);
      expect(r.stdout.toString()).toBe('hello\n');
      expect(r.events.length > 0).toBe(trace);
    }
  });

  it("says a missing working directory is the manifest's fault", async () => {
    const err = await runTraced({
      rootDir: root,
      args: ['/bin/sh'],
      env: {},
      cwd: '/no/such/dir',
      timeoutSeconds: 10,
      trace: true,
    }).catch((e) => e);
    expect(err.kind).toBe('manifest');
    expect(err.message).toContain('the working directory /no/such/dir does not exist in the image');
  });

  it('fails with 125 and names the step when the sandbox cannot be set up', () => {
    const r = spawnSync(TRACER, ['--root', '/nonexistent-root', '--events', join(work, 'e'), '--', '/bin/true'], {
      encoding: 'utf8',
    });
    expect(r.status).toBe(125);
    expect(r.stderr).toMatch(/mkimg-trace: realpath\(--root\): No such file or directory/);
  });

  it('runs as a non-root user through a user namespace', () => {
    const ev = join(work, 'nonroot.jsonl');
    const r = spawnSync(
      'setpriv',
      [
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        TRACER,
        '--root',
        root,
        '--events',
        ev,
        '--timeout',
        '20',
        '--env',
        'PATH=/usr/bin',
        '--',
        '/bin/sh',
        '-c',
        'touch /usr/y || echo ro; hostname; cat /etc/passwd >/dev/null',
      ],
      { encoding: 'utf8', env: { TMPDIR: work } },
    );
    expect(r.stderr).toContain('Read-only file system');
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('ro\nmkimg\n');
    const events = readFileSync(ev, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(events.some((e) => e.sc === 'openat' && e.abs === '/etc/passwd')).toBe(true);
  });

  it('runs in the overlay of --root on each --layer, without the --hide paths, as root and rootless, writing no layer', () => {
    // The layer: the test root plus a 0711 directory holding a kept and a hidden file.
    mkdirSync(join(root, 'srv/d'), { recursive: true });
    writeFileSync(join(root, 'srv/d/kept'), 'kept\n');
    writeFileSync(join(root, 'srv/d/hidden'), 'hidden\n');
    chmodSync(join(root, 'srv/d'), 0o711);
    // Its times too are the layer's, though the hide layer holds a folder of its own there.
    utimesSync(join(root, 'srv/d'), 1_600_000_000, 1_600_000_000);
    const top = tempDir('mkimg-tracer-top-');
    chmodSync(top, 0o755);
    mkdirSync(join(top, 'etc'), { mode: 0o755 });
    writeFileSync(join(top, 'etc/hello'), 'from the top\n');
    writeFileSync(join(top, 'etc/passwd'), 'root:x:0:0:replaced:/root:/bin/sh\n');
    const hide = join(work, 'hide');
    writeFileSync(hide, ['/etc/group', '/srv/d/hidden', '/usr/bin/ls'].join('\0'));
    const files = ['srv/d/kept', 'srv/d', 'usr/bin/ls', 'etc/group', 'etc/passwd'];
    const before = files.map((f) => lstatSync(join(root, f), { bigint: true }));
    const script =
      'cat /etc/hello /etc/passwd /srv/d/kept; for p in /usr/bin/ls /etc/group /srv/d/hidden; do [ -e $p ] && echo "$p shown" || echo "$p hidden"; done; ' +
      'stat -c "%a %Y" /srv/d; touch /usr/x 2>/dev/null || echo ro';
    for (const pre of [[], ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']]) {
      const cmd = [
        ...pre,
        TRACER,
        '--root',
        top,
        '--layer',
        root,
        '--hide',
        hide,
        '--no-trace',
        '--',
        '/bin/sh',
        '-c',
        script,
      ];
      const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', env: { TMPDIR: work } });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(r.stdout).toBe(
        'from the top\nroot:x:0:0:replaced:/root:/bin/sh\nkept\n/usr/bin/ls hidden\n/etc/group hidden\n/srv/d/hidden hidden\n' +
          '711 1600000000\nro\n',
      );
      // Without --hide the same overlay shows them.
      const all = spawnSync(
        cmd[0]!,
        [...cmd.slice(1, cmd.indexOf('--hide')), ...cmd.slice(cmd.indexOf('--hide') + 2)],
        {
          encoding: 'utf8',
          env: { TMPDIR: work },
        },
      );
      expect(all.stdout).toContain('/usr/bin/ls shown\n/etc/group shown\n/srv/d/hidden shown\n');
    }
    // Nothing was written, linked or changed in the layer: the same inodes, ctimes and link counts.
    const after = files.map((f) => lstatSync(join(root, f), { bigint: true }));
    for (const [i, b] of before.entries()) {
      expect([after[i]!.ino, after[i]!.ctimeNs, after[i]!.nlink]).toEqual([b.ino, b.ctimeNs, b.nlink]);
    }
    expect(readdirSync(work).filter((n) => n.startsWith('mkimg-layers.'))).toEqual([]);
    rmSync(top, { recursive: true, force: true });
  });

  it('refuses a --hide path that is not a normalized absolute image path, a layer overlayfs cannot name, --layer with --writable', () => {
    const hide = join(work, 'bad-hide');
    writeFileSync(hide, '/usr/../etc');
    const r = spawnSync(TRACER, ['--root', root, '--hide', hide, '--no-trace', '--', '/bin/true'], {
      encoding: 'utf8',
      env: { TMPDIR: work },
    });
    expect(r.status).toBe(125);
    expect(r.stderr).toMatch(/--hide: '\/usr\/\.\.\/etc' is not a normalized absolute image path/);
    // A layer path overlayfs options cannot carry, and --layer with --writable.
    const odd = join(work, 'a:b');
    mkdirSync(odd, { recursive: true });
    // (Refused where the layer is not idmapped, as for a caller that is not root: an idmapped one is named by its mount.)
    const rootless = ['--reuid=65534', '--regid=65534', '--clear-groups'];
    const colon = spawnSync(
      'setpriv',
      [...rootless, TRACER, '--root', root, '--layer', odd, '--no-trace', '--', '/bin/true'],
      {
        encoding: 'utf8',
        env: { TMPDIR: work },
      },
    );
    expect(colon.status).toBe(125);
    expect(colon.stderr).toContain(`the root layer ${odd} holds ',', ':' or '\\'`);
    const writable = spawnSync(
      TRACER,
      ['--root', root, '--layer', odd, '--writable', '--no-trace', '--', '/bin/true'],
      {
        encoding: 'utf8',
        env: { TMPDIR: work },
      },
    );
    expect(writable.status).toBe(125);
    expect(writable.stderr).toContain('--layer and --hide do not go with --writable');
    expect(readdirSync(work).filter((n) => n.startsWith('mkimg-layers.') || n.startsWith('mkimg-trace.'))).toEqual([]);
  });

  it('runs the program as --uid/--gid without capabilities, as root and rootless', () => {
    const script = 'while read l; do case "$l" in Uid*|Gid*|CapEff*) echo "$l";; esac; done < /proc/self/status';
    for (const pre of [[], ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']]) {
      const cmd = [
        ...pre,
        TRACER,
        '--root',
        root,
        '--events',
        join(work, `uid-${pre.length}.jsonl`),
        '--uid',
        '1000',
        '--gid',
        '1001',
        '--',
        '/bin/sh',
        '-c',
        script,
      ];
      const r = spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', env: { TMPDIR: work } });
      expect(r.status).toBe(0);
      expect(r.stdout.replace(/\t/g, ' ')).toBe(
        'Uid: 1000 1000 1000 1000\nGid: 1001 1001 1001 1001\nCapEff: 0000000000000000\n',
      );
    }
  });
});

describe('events', () => {
  it('resolves dirfd- and cwd-relative paths, reports listed directories, follows forks, threads and exec from a non-leader thread', async () => {
    const r = await runTraced({ rootDir: root, args: ['/usr/bin/paths'], env: {}, timeoutSeconds: 20, trace: true });
    expect(r.stdout.toString()).toBe('child=7\n');
    expect(r.exitCode).toBe(0);
    const find = (pred: (e: (typeof r.events)[number]) => boolean) => r.events.find(pred);
    expect(find((e) => e.sc === 'execve' && e.abs === '/usr/bin/paths')).toBeTruthy();
    expect(find((e) => e.sc === 'newfstatat' && e.path === 'relative/file')).toMatchObject({
      dirfd: '/usr/lib',
      abs: '/usr/lib/relative/file',
    });
    expect(find((e) => e.sc === 'access' && e.path === 'cwd-relative')).toMatchObject({
      dirfd: '/usr/bin',
      abs: '/usr/bin/cwd-relative',
    });
    expect(find((e) => e.sc === 'getdents64')).toMatchObject({ abs: '/etc', path: null });
    const exec2 = find((e) => e.sc === 'execve' && e.abs === '/usr/bin/true-ish');
    expect(exec2).toBeTruthy();
    // the exec'd program's own accesses are traced too (after exec from a thread)
    expect(find((e) => e.sc === 'access' && e.abs === '/etc/from-child')).toBeTruthy();
    // flags of openat are reported (O_DIRECTORY)
    expect((find((e) => e.sc === 'openat' && e.abs === '/usr/lib')!.flags & 0o200000) !== 0).toBe(true);
  });

  it('covers the path family with the right arguments, dirfds and flags', async () => {
    const r = await runTraced({ rootDir: root, args: ['/usr/bin/family'], env: {}, timeoutSeconds: 20, trace: true });
    expect(r.stderr.toString()).toBe('');
    expect(r.exitCode).toBe(0);
    const seen = r.events.filter((e) => e.abs?.startsWith('/tmp/d')).map((e) => `${e.sc} ${e.abs} ${e.flags}`);
    const AT_SYMLINK_NOFOLLOW = 0x100;
    for (const want of [
      'mkdir /tmp/d 0',
      `openat /tmp/d/f ${0o100 | 0o1}`,
      'openat2 /tmp/d/f 0',
      'symlinkat /tmp/d/ln 0',
      'linkat /tmp/d/f 0',
      'linkat /tmp/d/hard 0',
      'renameat /tmp/d/hard 0', // glibc's renameat2 with flags 0 is renameat
      'renameat /tmp/d/moved 0',
      'readlinkat /tmp/d/ln 0',
      `newfstatat /tmp/d/ln ${AT_SYMLINK_NOFOLLOW}`,
      'fchmodat /tmp/d/f 0',
      `fchownat /tmp/d/f ${AT_SYMLINK_NOFOLLOW}`,
      'utimensat /tmp/d/f 0',
      'getxattr /tmp/d/f 0',
      'lsetxattr /tmp/d/ln 0',
      'truncate /tmp/d/f 0',
      'statfs /tmp/d 0',
      'inotify_add_watch /tmp/d 0',
      'unlinkat /tmp/d/moved 0',
      'fchdir /tmp/d 0',
      'mkdirat /tmp/d/sub 0',
      'rmdir /tmp/d/sub 0',
      'chmod /tmp/d/f 0',
    ]) {
      expect(seen).toContain(want);
    }
    // faccessat2 (glibc uses it for flags) or faccessat
    expect(seen.some((e) => /^faccessat2? \/tmp\/d\/f/.test(e))).toBe(true);
    // statx(fd, "", AT_EMPTY_PATH) is fstat: not stopped on (see spec)
    expect(r.events.some((e) => e.sc === 'statx' && e.path === '')).toBe(false);
  });

  it('records the same set of paths on every run', async () => {
    const sets: string[][] = [];
    for (let i = 0; i < 2; i++) {
      const r = await runTraced({ rootDir: root, args: ['/usr/bin/paths'], env: {}, timeoutSeconds: 20, trace: true });
      sets.push([...new Set(r.events.map((e) => `${e.sc} ${e.abs}`))].sort());
    }
    expect(sets[0].length).toBeGreaterThan(10);
    expect(sets[1]).toEqual(sets[0]);
  });
});

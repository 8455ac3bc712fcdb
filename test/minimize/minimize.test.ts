/**
 * The minimizer end to end on real programs: a staging root built from the
 * host's libraries, checks traced, the keep set computed, the minimized root
 * proven by the sandbox and run again under runc.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, linkSync, mkdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageConfig, MinimizeSpec } from '../../src/manifest/types.js';
import { layOutKeep } from '../helpers/lay-out-keep.js';
import { minimizeAndProve } from '../../src/minimize/minimize.js';
import type { StagingRoot } from '../../src/stage/types.js';
import { isMkimgError } from '../../src/util/errors.js';
import {
  buildTracer,
  compileC,
  copyHostPath,
  copyWithClosure,
  makeRoot,
  runcRun,
  scanRoot,
  tempDir,
} from '../helpers/tracer-root.js';

const MAIN_DLOPEN = `
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
int main(void) {
  const char *p = getenv("PLUGIN");
  void *h = dlopen(p, RTLD_NOW);
  if (!h) { fprintf(stderr, "dlopen: %s\\n", dlerror()); return 2; }
  const char *(*greet)(void) = (const char *(*)(void))dlsym(h, "greet");
  printf("%s\\n", greet());
  return 0;
}`;
const PLUGIN = `const char *greet(void) { return "hello from plugin"; }`;

const NSS_ICONV = `
#include <iconv.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
int main(void) {
  struct passwd *pw = getpwnam("app");
  if (!pw) { fprintf(stderr, "no user\\n"); return 3; }
  iconv_t cd = iconv_open("UTF-16LE", "UTF-8");
  if (cd == (iconv_t)-1) { perror("iconv_open"); return 4; }
  char in[] = "h\\xc3\\xa9", out[16], *ip = in, *op = out;
  size_t il = strlen(in), ol = sizeof out;
  iconv(cd, &ip, &il, &op, &ol);
  printf("uid=%d home=%s utf16=%zu\\n", (int)pw->pw_uid, pw->pw_dir, sizeof out - ol);
  return 0;
}`;

const CHAIN = `
#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
static void *run(void *a) {
  (void)a;
  pid_t p = fork();
  if (p == 0) { execl("/usr/bin/stage2", "stage2", (char *)0); _exit(127); }
  int s; waitpid(p, &s, 0);
  printf("stage2 exited %d\\n", WEXITSTATUS(s));
  return NULL;
}
int main(void) {
  pthread_t t[3];
  for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, run, NULL);
  for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
  return 0;
}`;
const STAGE2 = `
#include <pthread.h>
#include <unistd.h>
static void *th(void *a) { (void)a; execl("/bin/sh", "sh", "-c", "cat /etc/chain-data >/dev/null; exit 5", (char *)0); return 0; }
int main(void) { pthread_t t; pthread_create(&t, 0, th, 0); pthread_join(t, 0); return 1; }`;

let root: StagingRoot;
let dir: string;
let work: string;
const config: ImageConfig = { env: { PATH: '/usr/bin:/bin' }, labels: {}, exposedPorts: [] };

function spec(over: Partial<MinimizeSpec>): MinimizeSpec {
  return {
    checks: [],
    keepGroups: [],
    keep: [],
    keepPackages: [],
    exclude: [],
    keepListed: false,
    timeoutSeconds: 60,
    ...over,
  };
}

beforeAll(() => {
  buildTracer();
  dir = makeRoot();
  work = tempDir('mkimg-min-work-');
  copyWithClosure(dir, ['/usr/bin/dash', '/usr/bin/cat', '/usr/bin/ls', '/usr/bin/sort']);
  symlinkSync('dash', join(dir, 'usr/bin/sh'));
  compileC(dir, '/usr/bin/dl-main', MAIN_DLOPEN, ['-ldl']);
  compileC(dir, '/usr/lib/plugins/libgreet.so', PLUGIN, ['-shared', '-fPIC']);
  compileC(dir, '/usr/lib/plugins/libunused.so', PLUGIN, ['-shared', '-fPIC']);
  compileC(dir, '/usr/bin/nss-iconv', NSS_ICONV);
  compileC(dir, '/usr/bin/chain', CHAIN, ['-pthread']);
  compileC(dir, '/usr/bin/stage2', STAGE2, ['-pthread']);
  // NSS and gconv from the host
  writeFileSync(join(dir, 'etc/nsswitch.conf'), 'passwd: files\ngroup: files\n');
  writeFileSync(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n');
  for (const f of ['libnss_files.so.2', 'libnss_compat.so.2']) copyHostPath(dir, `/usr/lib/x86_64-linux-gnu/${f}`);
  cpSync('/usr/lib/x86_64-linux-gnu/gconv', join(dir, 'usr/lib/x86_64-linux-gnu/gconv'), { recursive: true });
  // a #! script
  mkdirSync(join(dir, 'app'));
  writeFileSync(join(dir, 'app/run.sh'), '#!/bin/sh\necho "script says $(cat /etc/msg)"\n', { mode: 0o755 });
  writeFileSync(join(dir, 'etc/msg'), 'hi');
  writeFileSync(join(dir, 'etc/chain-data'), 'x');
  // a listed directory
  mkdirSync(join(dir, 'data'));
  for (const n of ['a', 'b', 'c']) writeFileSync(join(dir, 'data', n), n);
  // hardlinks and a program reached through /bin -> usr/bin
  mkdirSync(join(dir, 'usr/share/hl'), { recursive: true });
  writeFileSync(join(dir, 'usr/share/hl/one'), 'linked\n');
  linkSync(join(dir, 'usr/share/hl/one'), join(dir, 'usr/share/hl/two'));
  writeFileSync(join(dir, 'usr/share/unused.txt'), 'never read');
  chmodSync(dir, 0o755);
  root = scanRoot(dir, (p) =>
    p.startsWith('/usr/lib/x86_64-linux-gnu/gconv')
      ? 'pkg:libc6'
      : p.startsWith('/usr/bin')
        ? 'pkg:tools'
        : 'file:test',
  );
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Minimize, then run every check under runc in the minimized root laid out. */
async function minimizeAndRunc(
  s: MinimizeSpec,
  checks: { args: string[]; env?: Record<string, string>; stdout: string; exitCode?: number }[],
) {
  const r = await minimizeAndProve(root, s, config, { workDir: work });
  const rootfs = join(work, `runc-${Date.now()}`);
  layOutKeep(root, r.keep, rootfs);
  try {
    for (const c of checks) {
      const out = runcRun(rootfs, c.args, { ...config.env, ...c.env });
      expect(out.stderr).toBe('');
      expect(out.stdout).toBe(c.stdout);
      expect(out.code).toBe(c.exitCode ?? 0);
    }
  } finally {
    rmSync(rootfs, { recursive: true, force: true });
  }
  return r;
}

const hasRunc = spawnSync('runc', ['--version']).status === 0;

describe.runIf(hasRunc)('minimize and prove', () => {
  it('keeps a plugin dlopened by a name from the environment, and not its unused neighbour', async () => {
    const env = { PLUGIN: '/usr/lib/plugins/libgreet.so' };
    const s = spec({
      checks: [{ args: ['/usr/bin/dl-main'], env, expect: { exitCode: 0, stdout: 'hello from plugin\n' } }],
    });
    const r = await minimizeAndRunc(s, [{ args: ['/usr/bin/dl-main'], env, stdout: 'hello from plugin\n' }]);
    expect(r.keep.has('/usr/lib/plugins/libgreet.so')).toBe(true);
    expect(r.keep.has('/usr/lib/plugins/libunused.so')).toBe(false);
    expect(r.keep.has('/usr/lib64/ld-linux-x86-64.so.2')).toBe(true);
    expect(r.keep.has('/lib64')).toBe(true);
    expect(r.keep.has('/usr/share/unused.txt')).toBe(false);
    expect(r.report.rounds).toBe(1);
    expect(r.report.after.files).toBeLessThan(r.report.before.files);
    // the same keep set on a second run
    const again = await minimizeAndProve(root, s, config, { workDir: work });
    expect([...again.keep].sort()).toEqual([...r.keep].sort());
    // and the same report, down to why each path is kept
    expect(again.report).toEqual(r.report);
    expect(r.report.paths.find((p) => p.path === '/usr/lib/plugins/libgreet.so')).toMatchObject({
      kept: true,
      why: 'traced by check 1',
    });
    expect(r.report.paths.find((p) => p.path === '/usr/lib/plugins/libunused.so')).toMatchObject({ kept: false });
    expect(r.report.paths.filter((p) => p.kept && !p.why)).toEqual([]);
  });

  it('runs independent checks side by side with the same keep set and report as one at a time', async () => {
    const env = { PLUGIN: '/usr/lib/plugins/libgreet.so' };
    const s = spec({
      checks: [
        { args: ['/usr/bin/dl-main'], env, expect: { exitCode: 0, stdout: 'hello from plugin\n' } },
        {
          args: ['/usr/bin/nss-iconv'],
          env: {},
          expect: { exitCode: 0, stdout: 'uid=1000 home=/home/app utf16=4\n' },
        },
      ],
    });
    const one = await minimizeAndProve(root, s, config, { workDir: work, concurrency: 1 });
    const two = await minimizeAndProve(root, s, config, { workDir: work, concurrency: 2 });
    expect([...two.keep].sort()).toEqual([...one.keep].sort());
    expect(two.report).toEqual(one.report);
    expect(one.keep.has('/usr/lib/plugins/libgreet.so') && one.keep.has('/etc/nsswitch.conf')).toBe(true);
  });

  it('keeps NSS and the gconv module iconv loads, not the other gconv modules', async () => {
    const out = 'uid=1000 home=/home/app utf16=4\n';
    const s = spec({ checks: [{ args: ['/usr/bin/nss-iconv'], env: {}, expect: { exitCode: 0, stdout: out } }] });
    const r = await minimizeAndRunc(s, [{ args: ['/usr/bin/nss-iconv'], stdout: out }]);
    expect(r.keep.has('/etc/nsswitch.conf')).toBe(true);
    expect(r.keep.has('/usr/lib/x86_64-linux-gnu/gconv/UTF-16.so')).toBe(true);
    expect(r.keep.has('/usr/lib/x86_64-linux-gnu/gconv/EUC-JP.so')).toBe(false);
    const libc6 = r.report.packages.find((p) => p.origin === 'pkg:libc6')!;
    expect(libc6.after.files).toBeLessThan(libc6.before.files);
    // keep-groups add what is loaded lazily, and the report says what they added
    const g = await minimizeAndProve(root, { ...s, keepGroups: ['nss', 'gconv'] }, config, { workDir: work });
    expect(g.keep.has('/usr/lib/x86_64-linux-gnu/libnss_compat.so.2')).toBe(true);
    expect(g.keep.has('/usr/lib/x86_64-linux-gnu/gconv/EUC-JP.so')).toBe(true);
    expect(g.report.keepGroups.gconv.paths).toBeGreaterThan(100);
    expect(g.report.keepGroups.nss.sample).toContain('/usr/lib/x86_64-linux-gnu/libnss_compat.so.2');
  });

  it('keeps the #! interpreter of a script and the merged-/usr symlink it is named through', async () => {
    const s = spec({
      checks: [{ args: ['/app/run.sh'], env: {}, expect: { exitCode: 0, stdout: 'script says hi\n' } }],
    });
    const r = await minimizeAndRunc(s, [{ args: ['/app/run.sh'], stdout: 'script says hi\n' }]);
    for (const p of ['/bin', '/usr/bin/sh', '/usr/bin/dash', '/usr/bin/cat', '/etc/msg'])
      expect(r.keep.has(p)).toBe(true);
    expect(r.keep.has('/usr/bin/ls')).toBe(false);
  });

  it('follows a fork/exec chain with threads and exec from a non-leader thread', async () => {
    const out = 'stage2 exited 5\n'.repeat(3);
    const s = spec({ checks: [{ args: ['/usr/bin/chain'], env: {}, expect: { exitCode: 0, stdout: out } }] });
    const r = await minimizeAndRunc(s, [{ args: ['/usr/bin/chain'], stdout: out }]);
    for (const p of ['/usr/bin/stage2', '/usr/bin/dash', '/usr/bin/cat', '/etc/chain-data'])
      expect(r.keep.has(p)).toBe(true);
  });

  it('keeps listed directories with their traced entries, or whole with keepListed', async () => {
    const cmd = ['/bin/sh', '-c', 'for f in $(ls /data); do cat /data/$f; done'];
    const s = spec({ checks: [{ args: cmd, env: {}, expect: { exitCode: 0, stdout: 'abc' } }] });
    const r = await minimizeAndRunc(s, [{ args: cmd, stdout: 'abc' }]);
    expect(r.report.listedDirectories).toContain('/data');
    expect(['/data/a', '/data/b', '/data/c'].every((p) => r.keep.has(p))).toBe(true);
    // only listing, not reading: the names vanish unless keepListed keeps the directory whole
    const lsOnly = ['/usr/bin/ls', '/data'];
    const bare = spec({ checks: [{ args: lsOnly, env: {}, expect: { exitCode: 0, stdout: 'a\nb\nc\n' } }] });
    const err = await minimizeAndProve(root, bare, config, { workDir: work }).catch((e) => e);
    expect(isMkimgError(err) && err.kind).toBe('check');
    expect(String(err.message)).toContain('stdout differs at byte 0: "a\\nb\\nc\\n" in the full root, "" minimized');
    expect(String(err.hint)).toContain('keepListed');
    const whole = await minimizeAndRunc({ ...bare, keepListed: true }, [{ args: lsOnly, stdout: 'a\nb\nc\n' }]);
    expect(whole.keep.has('/data/b')).toBe(true);
    expect(whole.report.listedAdded.sample).toEqual(expect.arrayContaining(['/data/a', '/data/b', '/data/c']));
  });

  it('keeps hardlinks as one file with both names, reached through /bin -> usr/bin', async () => {
    const cmd = ['/bin/cat', '/usr/share/hl/two'];
    const s = spec({ checks: [{ args: cmd, env: {}, expect: { exitCode: 0, stdout: 'linked\n' } }] });
    const r = await minimizeAndRunc(s, [{ args: cmd, stdout: 'linked\n' }]);
    expect(r.keep.has('/usr/share/hl/one')).toBe(true);
    expect(r.keep.has('/usr/share/hl/two')).toBe(true);
    expect(r.keep.has('/bin')).toBe(true);
    const m = join(work, 'hl');
    layOutKeep(root, r.keep, m);
    try {
      expect(statSync(join(m, 'usr/share/hl/one')).ino).toBe(statSync(join(m, 'usr/share/hl/two')).ino);
    } finally {
      rmSync(m, { recursive: true, force: true });
    }
  });
});

describe('check errors', () => {
  it('says the manifest is wrong when a check fails in the full root', async () => {
    const s = spec({
      checks: [{ name: 'greets', args: ['/usr/bin/dl-main'], env: { PLUGIN: '/nope.so' }, expect: { exitCode: 0 } }],
    });
    const err = await minimizeAndProve(root, s, config, { workDir: work }).catch((e) => e);
    expect(isMkimgError(err) && err.kind).toBe('check');
    expect(err.message).toMatch(
      /greets .* fails in the full, unminimized root, so the manifest's check is wrong: exit code: expected 0, got 2/,
    );
    expect(err.message).toContain('dlopen: /nope.so');
  });

  it('fails naming the check and the missing path when an exclude removes what the check needs', async () => {
    const s = spec({
      checks: [{ args: ['/bin/cat', '/etc/msg'], env: {}, expect: { exitCode: 0, stdout: 'hi' } }],
      exclude: ['/etc/msg'],
    });
    const err = await minimizeAndProve(root, s, config, { workDir: work }).catch((e) => e);
    expect(isMkimgError(err) && err.kind).toBe('check');
    expect(err.message).toContain('check 1: exit code 0 in the full root, 1 minimized');
    expect(err.message).toContain('paths the checks need that minimize.exclude removes: /etc/msg');
  });

  it('uses entrypoint + cmd as the default check', async () => {
    const r = await minimizeAndProve(
      root,
      spec({}),
      { ...config, entrypoint: ['/bin/sh', '-c'], cmd: ['cat /etc/msg'] },
      { workDir: work },
    );
    expect(r.report.checks).toEqual([
      { name: 'entrypoint', args: ['/bin/sh', '-c', 'cat /etc/msg'], exitCode: 0, tracedPaths: expect.any(Number) },
    ]);
    expect(r.keep.has('/etc/msg')).toBe(true);
    void execFileSync;
  });
});

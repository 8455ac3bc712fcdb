/**
 * Static analysis without tracing: ELF PT_INTERP / DT_NEEDED / RUNPATH with
 * $ORIGIN, #! chains, globs, excludes and the always-kept paths, on a root
 * built from real gcc output.
 */
import { rmSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageConfig, MinimizeSpec } from '../../src/manifest/types.js';
import { readElf, readShebang } from '../../src/minimize/elf.js';
import { computeKeepSet, keepEventKey } from '../../src/minimize/keep.js';
import type { TraceEvent } from '../../src/trace/events.js';
import type { StagingRoot } from '../../src/stage/types.js';
import { compileC, copyWithClosure, makeRoot, scanRoot } from '../helpers/tracer-root.js';

let dir = '';
let root: StagingRoot;
const config: ImageConfig = { env: {}, labels: {}, exposedPorts: [] };
const spec = (o: Partial<MinimizeSpec> = {}): MinimizeSpec => ({
  checks: [],
  keepGroups: [],
  keep: [],
  keepPackages: [],
  exclude: [],
  keepListed: false,
  timeoutSeconds: 10,
  ...o,
});
const exec = (p: string): TraceEvent => ({ pid: 1, sc: 'execve', path: p, dirfd: null, abs: p, flags: 0 });

beforeAll(() => {
  dir = makeRoot();
  copyWithClosure(dir, ['/usr/bin/dash']);
  symlinkSync('dash', join(dir, 'usr/bin/sh'));
  compileC(dir, '/opt/app/lib/libfoo.so', 'int foo(void) { return 42; }', ['-shared', '-fPIC']);
  compileC(dir, '/opt/app/bin/app', 'int foo(void); int main(void) { return foo(); }', [
    `-L${dir}/opt/app/lib`,
    '-lfoo',
    '-Wl,-rpath,$ORIGIN/../lib',
  ]);
  mkdirSync(join(dir, 'usr/share/doc/x'), { recursive: true });
  writeFileSync(join(dir, 'usr/share/doc/x/README'), 'doc');
  writeFileSync(join(dir, 'opt/app/bin/wrapper'), '#!/opt/app/bin/inner arg\n', { mode: 0o755 });
  writeFileSync(join(dir, 'opt/app/bin/inner'), '#!/bin/sh\n', { mode: 0o755 });
  root = scanRoot(dir);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('static analysis', () => {
  it('reads PT_INTERP, DT_NEEDED and RUNPATH from gcc output', async () => {
    const e = await readElf(join(dir, 'opt/app/bin/app'));
    expect(e).toMatchObject({
      class: 64,
      machine: 62,
      interp: '/lib64/ld-linux-x86-64.so.2',
      runpath: ['$ORIGIN/../lib'],
    });
    expect(e!.needed).toEqual(['libfoo.so', 'libc.so.6']);
    expect(await readElf(join(dir, 'opt/app/bin/wrapper'))).toBeNull();
    expect(await readShebang(join(dir, 'opt/app/bin/wrapper'))).toEqual({ interp: '/opt/app/bin/inner', arg: 'arg' });
  });

  it('keeps the loader, $ORIGIN libraries and libc of an executed program, through the /lib64 symlink', async () => {
    const k = await computeKeepSet(root, [exec('/opt/app/bin/app')], spec(), config);
    for (const p of [
      '/opt/app/lib/libfoo.so',
      '/lib64',
      '/usr/lib64/ld-linux-x86-64.so.2',
      '/usr/lib/x86_64-linux-gnu/libc.so.6',
      '/',
      '/etc/passwd',
      '/etc/group',
      '/tmp',
    ]) {
      expect(k.keep.has(p)).toBe(true);
    }
    expect(k.staticAnalysis).toContain('/opt/app/lib/libfoo.so');
    expect(k.keep.has('/usr/bin/dash')).toBe(false);
  });

  it('follows a chain of #! interpreters to an ELF program', async () => {
    const k = await computeKeepSet(root, [exec('/opt/app/bin/wrapper')], spec(), config);
    for (const p of [
      '/opt/app/bin/inner',
      '/bin',
      '/usr/bin/sh',
      '/usr/bin/dash',
      '/usr/lib/x86_64-linux-gnu/libc.so.6',
    ])
      expect(k.keep.has(p)).toBe(true);
  });

  it('applies keep and exclude globs and reports what they did', async () => {
    const k = await computeKeepSet(
      root,
      [exec('/usr/bin/dash')],
      spec({ keep: ['/usr/share/doc/**'], exclude: ['/usr/share/doc/x/README'] }),
      config,
    );
    expect(k.globs['/usr/share/doc/**']).toContain('/usr/share/doc/x/README');
    expect(k.excluded['/usr/share/doc/x/README']).toEqual(['/usr/share/doc/x/README']);
    expect(k.keep.has('/usr/share/doc/x/README')).toBe(false);
    expect(k.keep.has('/usr/share/doc/x')).toBe(true);
    await expect(computeKeepSet(root, [], spec({ keepGroups: ['fonts'] }), config)).rejects.toThrow(
      /unknown group "fonts"/,
    );
  });

  it('says why each path is kept: the check that traced it, the ELF file that needs it, the glob, the parent', async () => {
    const k = await computeKeepSet(root, [exec('/opt/app/bin/app')], spec({ keep: ['/usr/share/doc/**'] }), config, {
      eventSources: ['smoke'],
    });
    expect(k.why.get('/opt/app/bin/app')).toBe('traced by smoke');
    expect(k.why.get('/opt/app/lib/libfoo.so')).toBe('ELF dependency of /opt/app/bin/app');
    expect(k.why.get('/usr/lib64/ld-linux-x86-64.so.2')).toBe('ELF interpreter of /opt/app/bin/app');
    expect(k.why.get('/usr/share/doc/x/README')).toBe('keep glob /usr/share/doc/**');
    expect(k.why.get('/etc/passwd')).toBe('always kept');
    expect([...k.keep].filter((p) => !k.why.has(p))).toEqual([]);
    const w = await computeKeepSet(root, [exec('/opt/app/bin/wrapper')], spec(), config);
    expect(w.why.get('/opt/app/bin/inner')).toBe('#! interpreter of /opt/app/bin/wrapper');
  });

  it('keeps files created at run time out, and their directories in', async () => {
    const created: TraceEvent = {
      pid: 1,
      sc: 'openat',
      path: '/opt/app/new.log',
      dirfd: null,
      abs: '/opt/app/new.log',
      flags: 0o101,
    };
    const k = await computeKeepSet(root, [created], spec(), config);
    expect(k.keep.has('/opt/app')).toBe(true);
    expect(k.keep.has('/opt/app/new.log')).toBe(false);
    expect(k.keep.has('/opt/app/bin')).toBe(false);
  });

  it('keeps the same paths for events with the same keepEventKey, whatever else differs (a proof round relies on it)', async () => {
    const ev = (o: Partial<TraceEvent>): TraceEvent => ({
      pid: 1,
      sc: 'openat',
      path: '/usr/bin/sh',
      dirfd: null,
      abs: '/usr/bin/sh',
      flags: 0,
      ...o,
    });
    const keepOf = async (events: TraceEvent[]) =>
      [...(await computeKeepSet(root, events, spec(), config)).keep].sort();
    const base = [ev({}), exec('/opt/app/bin/app')];
    // Another thread, another spelling of the same path, other flags that change nothing computeKeepSet reads.
    const same = [ev({ pid: 7, path: 'sh', dirfd: '/usr/bin', fd: 3, flags: 0o2000000 }), exec('/opt/app/bin/app')];
    expect(same.map(keepEventKey)).toEqual(base.map(keepEventKey));
    expect(await keepOf(same)).toEqual(await keepOf(base));
    // Not following the last link, executing, or listing: another key, and other paths kept.
    const noFollow = ev({ sc: 'lstat' });
    const runs = ev({ sc: 'execve', path: '/opt/app/bin/wrapper', abs: '/opt/app/bin/wrapper' });
    const opens = ev({ path: '/opt/app/bin/wrapper', abs: '/opt/app/bin/wrapper' });
    expect(keepEventKey(noFollow)).not.toBe(keepEventKey(ev({})));
    expect(keepEventKey(runs)).not.toBe(keepEventKey(opens));
    expect(keepEventKey(ev({ sc: 'getdents64' }))).not.toBe(keepEventKey(ev({})));
    expect(await keepOf([noFollow])).not.toEqual(await keepOf([ev({})]));
    expect(await keepOf([runs])).not.toEqual(await keepOf([opens]));
    // Events computeKeepSet skips have no key.
    expect(keepEventKey(ev({ abs: null }))).toBeUndefined();
    expect(keepEventKey(ev({ abs: 'relative' }))).toBeUndefined();
  });
});

import { afterEach, describe, expect, test } from 'vitest';
import { lstatSync, mkdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createStagingRoot, resolveInRoot } from '../../src/stage/root.js';
import { MkimgError } from '../../src/util/errors.js';
import { tempDir } from '../helpers/debbuild.js';

const dirs: string[] = [];
afterEach(() => {
  while (dirs.length) rmSync(dirs.pop()!, { recursive: true, force: true });
});
function fresh(): string {
  const d = tempDir('root');
  dirs.push(d);
  return d;
}

describe('createStagingRoot', () => {
  test('lays down the merged-/usr layout on disk and in the index', async () => {
    const d = fresh();
    const root = await createStagingRoot(join(d, 'root'));
    for (const p of ['/usr', '/usr/bin', '/usr/lib', '/usr/lib64', '/usr/sbin']) {
      expect(lstatSync(root.dir + p).isDirectory()).toBe(true);
      expect(lstatSync(root.dir + p).mode & 0o7777).toBe(0o755);
      expect(root.entries.get(p)).toEqual({
        path: p,
        type: 'dir',
        mode: 0o755,
        uid: 0,
        gid: 0,
        size: 0,
        origin: 'layout',
      });
    }
    for (const [l, t] of [
      ['/bin', 'usr/bin'],
      ['/lib', 'usr/lib'],
      ['/lib64', 'usr/lib64'],
      ['/sbin', 'usr/sbin'],
    ]) {
      expect(readlinkSync(root.dir + l)).toBe(t);
      expect(root.entries.get(l)).toEqual({
        path: l,
        type: 'symlink',
        mode: 0o777,
        uid: 0,
        gid: 0,
        size: 0,
        linkTarget: t,
        origin: 'layout',
      });
    }
    expect(root.entries.size).toBe(9);
    expect(root.packages).toEqual([]);
  });

  test('refuses a non-empty directory', async () => {
    const d = fresh();
    writeFileSync(join(d, 'x'), 'x');
    await expect(createStagingRoot(d)).rejects.toThrow(/not empty/);
  });
});

describe('resolveInRoot', () => {
  test('follows merged-/usr links, absolute and relative links, and keeps ".." at the root', async () => {
    const d = fresh();
    const root = (await createStagingRoot(join(d, 'root'))).dir; // a host directory laid out as a root: the disk walk
    mkdirSync(root + '/etc/alternatives', { recursive: true });
    writeFileSync(root + '/usr/bin/real', 'x');
    symlinkSync('/usr/bin/real', root + '/etc/alternatives/x');
    symlinkSync('/etc/alternatives/x', root + '/usr/bin/x');
    symlinkSync('../../../../../../etc', root + '/usr/lib/up');

    expect(await resolveInRoot(root, '/bin/real')).toMatchObject({
      path: '/usr/bin/real',
      hops: ['/bin'],
      exists: true,
      kind: 'file',
      clamped: false,
    });
    expect(await resolveInRoot(root, '/bin/x')).toMatchObject({
      path: '/usr/bin/real',
      hops: ['/bin', '/usr/bin/x', '/etc/alternatives/x'],
      exists: true,
    });
    expect(await resolveInRoot(root, '/bin/x', { followLast: false })).toMatchObject({
      path: '/usr/bin/x',
      kind: 'symlink',
      hops: ['/bin'],
    });
    expect(await resolveInRoot(root, '/bin', { followLast: false })).toMatchObject({
      path: '/bin',
      kind: 'symlink',
      hops: [],
    });
    const up = await resolveInRoot(root, '/lib/up/alternatives');
    expect(up).toMatchObject({
      path: '/etc/alternatives',
      exists: true,
      kind: 'dir',
      clamped: true,
      hops: ['/lib', '/usr/lib/up'],
    });
    expect(await resolveInRoot(root, '/../../etc/./alternatives/')).toMatchObject({
      path: '/etc/alternatives',
      clamped: true,
    });
    expect(await resolveInRoot(root, '/nope/a/../b')).toMatchObject({ path: '/nope/b', exists: false });
    expect(await resolveInRoot(root, '/usr/bin/real/more')).toMatchObject({ exists: false, notDir: '/usr/bin/real' });
    expect(await resolveInRoot(root, '/')).toMatchObject({ path: '/', exists: true, kind: 'dir' });
  });

  test('a symlink loop is an input error after 40 hops', async () => {
    const d = fresh();
    const root = (await createStagingRoot(join(d, 'root'))).dir; // a host directory laid out as a root: the disk walk
    symlinkSync('b', root + '/a');
    symlinkSync('a', root + '/b');
    const e = await resolveInRoot(root, '/a/x').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(MkimgError);
    expect((e as MkimgError).kind).toBe('input');
    expect((e as MkimgError).message).toMatch(/too many levels of symbolic links resolving \/a\/x/);
  });

  test('a disk root resolves in its index, which mirrors the disk: what is only on disk is not there', async () => {
    const d = fresh();
    const root = await createStagingRoot(join(d, 'root'));
    symlinkSync('/usr/bin', root.dir + '/usr/bin-link'); // behind the index's back
    expect(await resolveInRoot(root, '/usr/bin-link', { followLast: false })).toMatchObject({ exists: false });
    expect(await resolveInRoot(root.dir, '/usr/bin-link', { followLast: false })).toMatchObject({
      exists: true,
      kind: 'symlink',
    });
  });
});

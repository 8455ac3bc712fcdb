/**
 * Globs over a staging root's index give the answers a directory walk of the
 * root on disk gives (fast-glob: dot files, no walking into symlinked
 * directories, leading fixed directories followed through symlinks).
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import fg from 'fast-glob';
import { afterAll, describe, expect, test } from 'vitest';
import { KEEP_GROUPS } from '../../src/minimize/keep.js';
import { globRoot } from '../../src/stage/glob.js';
import { createStagingRoot } from '../../src/stage/root.js';
import type { StagingRoot } from '../../src/stage/types.js';

const work = mkdtempSync(join(tmpdir(), 'mkimg-glob-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function lay(root: StagingRoot, path: string, what: { dir?: true; link?: string; text?: string }): void {
  const parent = dirname(path);
  if (parent !== '/' && !root.entries.has(parent)) lay(root, parent, { dir: true });
  const base = { path, mode: 0o644, uid: 0, gid: 0, size: 0, origin: 'pkg:test' };
  if (what.dir) {
    mkdirSync(root.dir + path);
    root.entries.set(path, { ...base, type: 'dir', mode: 0o755 });
  } else if (what.link !== undefined) {
    symlinkSync(what.link, root.dir + path);
    root.entries.set(path, { ...base, type: 'symlink', linkTarget: what.link });
  } else {
    writeFileSync(root.dir + path, what.text ?? 'x');
    root.entries.set(path, { ...base, type: 'file', size: (what.text ?? 'x').length });
  }
}

async function walked(root: StagingRoot, pattern: string): Promise<string[]> {
  const found = await fg(pattern.replace(/^\/+/, ''), {
    cwd: root.dir,
    dot: true,
    onlyFiles: false,
    followSymbolicLinks: false,
    unique: true,
    suppressErrors: true,
  });
  return found.map((f) => `/${f.replace(/\/+$/, '')}`).sort();
}

describe('globRoot', () => {
  test('matches what a walk of the root on disk matches', async () => {
    const root = await createStagingRoot(join(work, 'root'));
    for (const f of ['libnss_files.so.2', 'libnss_dns.so.2', 'libc.so.6', '.hidden.so'])
      lay(root, `/usr/lib/x86_64-linux-gnu/${f}`, {});
    lay(root, '/usr/lib/x86_64-linux-gnu/gconv/UTF-16.so', {});
    lay(root, '/usr/lib/x86_64-linux-gnu/gconv/gconv-modules.d/a.conf', {});
    lay(root, '/usr/share/zoneinfo/Europe/Paris', {});
    lay(root, '/usr/share/zoneinfo/posix', { link: '.' });
    lay(root, '/usr/share/zoneinfo/right/Europe/Paris', {});
    lay(root, '/usr/share/zoneinfo/.tab', {});
    lay(root, '/etc/localtime', { link: '/usr/share/zoneinfo/Europe/Paris' });
    lay(root, '/etc/ssl/certs', { dir: true });
    lay(root, '/usr/lib/ssl/certs', { link: '/etc/ssl/certs' });
    lay(root, '/etc/ld.so.conf.d/x86_64-linux-gnu.conf', {});
    lay(root, '/opt/linkdir', { link: '/usr/share/zoneinfo' });
    lay(root, '/loop', { link: '/loop' });
    const patterns = [
      ...Object.values(KEEP_GROUPS).flat(),
      '/usr/share/zoneinfo/right/**',
      '/lib/x86_64-linux-gnu/libnss_*', // through the merged-/usr link
      '/lib/*/libc.so.*',
      '/usr/lib/*/gconv/**',
      '/usr/lib/x86_64-linux-gnu/*.{so,so.2}',
      '/usr/lib/x86_64-linux-gnu/lib?ss_*',
      '/usr/lib/x86_64-linux-gnu/[lx]ibc*',
      '/etc/ld.so.conf.d/*.conf',
      '/opt/*/Europe/*', // a symlinked directory inside the pattern: not walked into
      '/usr/share/zoneinfo/posix/**',
      '/etc/localtime',
      '/usr/lib/ssl/certs',
      '/nonexistent/**',
      '/etc/localtime/*',
      '/loop/*',
      '/**/Paris',
    ];
    for (const p of patterns) expect(globRoot(root, p), p).toEqual(await walked(root, p));
    expect(globRoot(root, '/usr/share/zoneinfo/**')).toContain('/usr/share/zoneinfo/.tab');
    // A symlinked directory as the fixed part is followed inside the root (a walk on disk would follow
    // its absolute target on the host).
    expect(globRoot(root, '/opt/linkdir/Europe/*')).toEqual(['/opt/linkdir/Europe/Paris']);
  });
});

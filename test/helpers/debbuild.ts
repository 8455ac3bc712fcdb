/** Build real packages with dpkg-deb (run as root: owners come from chown in the tree). */
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  readFileSync,
} from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

export type TreeItem =
  | { path: string; type: 'file'; content: string | Buffer; mode?: number; uid?: number; gid?: number }
  | { path: string; type: 'dir'; mode?: number; uid?: number; gid?: number }
  | { path: string; type: 'symlink'; target: string }
  | { path: string; type: 'hardlink'; target: string };

export interface BuiltDeb {
  path: string;
  sha256: string;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `mkimg-${prefix}-`));
}

export function buildDeb(
  outDir: string,
  opts: {
    name: string;
    version?: string;
    items: TreeItem[];
    compression?: 'xz' | 'gzip' | 'zstd' | 'none';
    rootOwner?: boolean;
    extraControl?: Record<string, string>;
  },
): BuiltDeb {
  const tree = mkdtempSync(join(outDir, 'tree-'));
  try {
    mkdirSync(join(tree, 'DEBIAN'));
    writeFileSync(
      join(tree, 'DEBIAN/control'),
      `Package: ${opts.name}\nVersion: ${opts.version ?? '1.0'}\nArchitecture: amd64\nMaintainer: Test <test@example.invalid>\nDescription: test package\n`,
    );
    for (const [k, v] of Object.entries(opts.extraControl ?? {}))
      writeFileSync(join(tree, 'DEBIAN', k), v, { mode: /^(pre|post)(inst|rm)$/.test(k) ? 0o755 : 0o644 });
    for (const it of opts.items) {
      const p = join(tree, it.path);
      mkdirSync(dirname(p), { recursive: true });
      if (it.type === 'file') {
        writeFileSync(p, it.content);
        chownSync(p, it.uid ?? 0, it.gid ?? 0); // before chmod: chown clears setuid
        chmodSync(p, it.mode ?? 0o644);
      } else if (it.type === 'dir') {
        mkdirSync(p, { recursive: true });
        chownSync(p, it.uid ?? 0, it.gid ?? 0);
        chmodSync(p, it.mode ?? 0o755);
      } else if (it.type === 'symlink') symlinkSync(it.target, p);
      else linkSync(join(tree, it.target), p);
    }
    const out = join(outDir, `${opts.name}_${opts.version ?? '1.0'}_${opts.compression ?? 'xz'}.deb`);
    const args = ['--build', `-Z${opts.compression ?? 'xz'}`];
    if (opts.rootOwner) args.unshift('--root-owner-group');
    execFileSync('dpkg-deb', [...args, tree, out], { stdio: ['ignore', 'ignore', 'pipe'] });
    return { path: out, sha256: createHash('sha256').update(readFileSync(out)).digest('hex') };
  } finally {
    rmSync(tree, { recursive: true, force: true });
  }
}

export function sha256Of(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/**
 * A package tree that exercises merged-/usr landing, modes, owners, setuid,
 * symlinks (relative and absolute) and a hardlink. `libz` is the content of
 * the one library file (its size matters to some tests).
 */
export function mergedUsrItems(libz = 'ELF...'): TreeItem[] {
  return [
    { path: 'bin/foo', type: 'file', content: 'foo-binary', mode: 0o755 },
    { path: 'sbin/bar', type: 'file', content: 'bar', mode: 0o700 },
    { path: 'lib/x86_64-linux-gnu/libz.so.1.2', type: 'file', content: libz, mode: 0o644 },
    { path: 'lib/x86_64-linux-gnu/libz.so.1', type: 'symlink', target: 'libz.so.1.2' },
    { path: 'usr/bin/passwd', type: 'file', content: 'suid', mode: 0o4755 },
    { path: 'etc/shadowish', type: 'file', content: 'secret', mode: 0o640, uid: 0, gid: 42 },
    { path: 'var/spool/app', type: 'dir', mode: 0o1730, uid: 5, gid: 6 },
    { path: 'etc/alternatives/editor', type: 'symlink', target: '/usr/bin/foo' },
    { path: 'usr/bin/foo2', type: 'hardlink', target: 'bin/foo' },
  ];
}

/**
 * Five packages built into `outDir`, one per data compression (xz twice),
 * with files, links, a hardlink, setuid and a shared file path: base, libs,
 * tools, plain, last. `docs` adds a copyright file to base and tools;
 * `sharedConf` has libs ship base's /etc/conf again (same bytes); `libz` is
 * the content of libs' library file.
 */
export function mixedPackageSet(
  outDir: string,
  opts: { docs: boolean; sharedConf: boolean; libz: string },
): { path: string; sha256: string }[] {
  const doc = (pkg: string): TreeItem[] =>
    opts.docs ? [{ path: `usr/share/doc/${pkg}/copyright`, type: 'file', content: 'c', mode: 0o644 }] : [];
  const sets: { name: string; items: TreeItem[]; compression: 'xz' | 'gzip' | 'zstd' | 'none' }[] = [
    {
      name: 'base',
      compression: 'xz',
      items: [
        { path: 'bin/sh', type: 'file', content: 'shell', mode: 0o755 },
        { path: 'etc/conf', type: 'file', content: 'same', mode: 0o644 },
        ...doc('base'),
        { path: 'var/spool/app', type: 'dir', mode: 0o1730, uid: 5, gid: 6 },
      ],
    },
    {
      name: 'libs',
      compression: 'gzip',
      items: [
        { path: 'lib/x86_64-linux-gnu/libz.so.1.2', type: 'file', content: opts.libz, mode: 0o644 },
        { path: 'lib/x86_64-linux-gnu/libz.so.1', type: 'symlink', target: 'libz.so.1.2' },
        ...(opts.sharedConf ? [{ path: 'etc/conf', type: 'file', content: 'same', mode: 0o644 } as TreeItem] : []),
      ],
    },
    {
      name: 'tools',
      compression: 'zstd',
      items: [
        { path: 'usr/bin/tool', type: 'file', content: 'tool', mode: 0o4755 },
        { path: 'usr/bin/tool2', type: 'hardlink', target: 'usr/bin/tool' },
        ...doc('tools'),
      ],
    },
    {
      name: 'plain',
      compression: 'none',
      items: [{ path: 'opt/plain/README', type: 'file', content: 'r', mode: 0o600 }],
    },
    {
      name: 'last',
      compression: 'xz',
      items: [
        { path: 'etc/alternatives/sh', type: 'symlink', target: '/bin/sh' },
        { path: 'usr/lib/last/data', type: 'file', content: 'x'.repeat(70_000), mode: 0o644 },
      ],
    },
  ];
  return sets.map((s) => buildDeb(outDir, s)).map((b) => ({ path: b.path, sha256: b.sha256 }));
}

/** Build real packages with dpkg-deb (run as root: owners come from chown in the tree). */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, readFileSync } from 'node:fs';
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
  opts: { name: string; version?: string; items: TreeItem[]; compression?: 'xz' | 'gzip' | 'zstd' | 'none'; rootOwner?: boolean; extraControl?: Record<string, string> },
): BuiltDeb {
  const tree = mkdtempSync(join(outDir, 'tree-'));
  try {
    mkdirSync(join(tree, 'DEBIAN'));
    writeFileSync(
      join(tree, 'DEBIAN/control'),
      `Package: ${opts.name}\nVersion: ${opts.version ?? '1.0'}\nArchitecture: amd64\nMaintainer: Test <test@example.invalid>\nDescription: test package\n`,
    );
    for (const [k, v] of Object.entries(opts.extraControl ?? {})) writeFileSync(join(tree, 'DEBIAN', k), v, { mode: /^(pre|post)(inst|rm)$/.test(k) ? 0o755 : 0o644 });
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

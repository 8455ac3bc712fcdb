/**
 * Build real .deb files with dpkg-deb for tests: a control stanza plus a tree
 * of files (content, mode, symlinks). Returns the path and sha256.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { sha256Hex } from '../../src/util/digest.js';

export type DebFile =
  | string
  | Buffer
  | { content: string | Buffer; mode?: number }
  | { symlink: string }
  | { copyFrom: string; mode?: number };

export interface DebSpec {
  name: string;
  version?: string;
  architecture?: string;
  depends?: string;
  extraControl?: Record<string, string>;
  files: Record<string, DebFile>; // image path → content
  compression?: 'xz' | 'gzip' | 'zstd' | 'none';
}

export function makeDeb(outDir: string, spec: DebSpec): { path: string; sha256: string } {
  const tree = mkdtempSync(join(tmpdir(), 'mkimg-deb-'));
  try {
    mkdirSync(join(tree, 'DEBIAN'));
    const control: Record<string, string> = {
      Package: spec.name,
      Version: spec.version ?? '1.0',
      Architecture: spec.architecture ?? 'amd64',
      Maintainer: 'mkimg tests <tests@mkimg.invalid>',
      ...(spec.depends ? { Depends: spec.depends } : {}),
      ...spec.extraControl,
      Description: `test package ${spec.name}`,
    };
    writeFileSync(
      join(tree, 'DEBIAN', 'control'),
      Object.entries(control)
        .map(([k, v]) => `${k}: ${v}`)
        .join('\n') + '\n',
    );
    for (const [p, f] of Object.entries(spec.files)) {
      const host = join(tree, p);
      mkdirSync(dirname(host), { recursive: true });
      if (typeof f === 'string' || Buffer.isBuffer(f)) writeFileSync(host, f, { mode: 0o644 });
      else if ('symlink' in f) symlinkSync(f.symlink, host);
      else if ('copyFrom' in f) {
        writeFileSync(host, readFileSync(f.copyFrom));
        chmodSync(host, f.mode ?? 0o755);
      } else {
        writeFileSync(host, f.content);
        chmodSync(host, f.mode ?? 0o644);
      }
    }
    execFileSync('chmod', ['-R', 'go-w', tree]);
    const out = join(outDir, `${spec.name}_${spec.version ?? '1.0'}_${spec.architecture ?? 'amd64'}.deb`);
    execFileSync('dpkg-deb', ['--root-owner-group', `-Z${spec.compression ?? 'xz'}`, '--build', tree, out], {
      stdio: 'pipe',
      env: { ...process.env, SOURCE_DATE_EPOCH: '1700000000' },
    });
    return { path: out, sha256: sha256Hex(readFileSync(out)) };
  } finally {
    rmSync(tree, { recursive: true, force: true });
  }
}

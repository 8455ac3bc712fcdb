/**
 * Test helpers for signing: a throwaway GnuPG home, sq keys, and openpgp.js
 * keys with chosen dates. Everything lives under one temp dir; call cleanup().
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

export function run(
  cmd: string,
  args: string[],
  opts: { env?: Record<string, string>; input?: string | Buffer; cwd?: string } = {},
): Run {
  const r = spawnSync(cmd, args, {
    env: { ...process.env, ...opts.env },
    input: opts.input,
    cwd: opts.cwd,
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (r.error) throw r.error;
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export class TempDir {
  readonly path: string;
  constructor(prefix = 'mkimg-test-') {
    this.path = mkdtempSync(join(tmpdir(), prefix));
  }
  file(name: string, content?: string | Buffer): string {
    const p = join(this.path, name);
    if (content !== undefined) writeFileSync(p, content);
    return p;
  }
  cleanup(): void {
    rmSync(this.path, { recursive: true, force: true });
  }
}

/** A throwaway GnuPG home. gpg-agent is started on demand; cleanup() kills it. */
export class Gpg {
  readonly home: string;
  constructor(dir: TempDir, name = 'gnupg') {
    this.home = join(dir.path, name);
    execFileSync('mkdir', ['-m', '700', '-p', this.home]);
  }
  run(args: string[], input?: string): Run {
    return run(
      'gpg',
      [
        '--homedir',
        this.home,
        '--batch',
        '--yes',
        '--no-tty',
        '--pinentry-mode',
        'loopback',
        '--passphrase',
        '',
        ...args,
      ],
      { input },
    );
  }
  ok(args: string[], input?: string): string {
    const r = this.run(args, input);
    if (r.status !== 0) throw new Error(`gpg ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
    return r.stdout;
  }
  /** Make a key without passphrase; returns its fingerprint. algo: ed25519 | rsa3072 | rsa2048 | ... */
  genKey(uid: string, algo: string, expire = '0', extra: string[] = []): string {
    this.ok([...extra, '--quick-gen-key', uid, algo, 'sign', expire]);
    const out = this.ok(['--with-colons', '--list-keys', uid]);
    const fprs = out.split('\n').filter((l) => l.startsWith('fpr:'));
    return fprs[fprs.length - 1].split(':')[9];
  }
  exportPublic(fpr: string, path: string): string {
    this.ok(['--armor', '--export', '--output', path, fpr]);
    return path;
  }
  cleanup(): void {
    run('gpgconf', ['--homedir', this.home, '--kill', 'all']);
  }
}

export function haveTool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`]).status === 0;
}

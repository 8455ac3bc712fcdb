/**
 * Run the real mkimg CLI for the sign/verify/diff tests: bin/mkimg.js, as
 * helpers/cli.ts runs it. Builds dist/ with tsc when it is missing or older
 * than the sources of these commands.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { mkimg, PROJECT_ROOT, type CliResult } from './cli.js';

const DIST = join(PROJECT_ROOT, 'dist');

export function ensureDist(): void {
  const need = [
    'cli/main.js',
    'cli/commands/verify.js',
    'cli/commands/sign.js',
    'cli/commands/key.js',
    'cli/commands/diff.js',
    'verify/verify.js',
  ];
  const stale = () =>
    ['sign', 'verify', 'cli/commands'].some((d) =>
      readdirSync(join(PROJECT_ROOT, 'src', d)).some((f) => {
        if (!f.endsWith('.ts')) return false;
        const out = join(DIST, d, f.replace(/\.ts$/, '.js'));
        return !existsSync(out) || statSync(out).mtimeMs < statSync(join(PROJECT_ROOT, 'src', d, f)).mtimeMs;
      }),
    );
  if (need.every((f) => existsSync(join(DIST, f))) && !stale()) return;
  // tsc emits even when files elsewhere in the tree do not type-check.
  spawnSync(
    process.execPath,
    [join(PROJECT_ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(PROJECT_ROOT, 'tsconfig.json')],
    { cwd: PROJECT_ROOT, stdio: 'ignore', timeout: 300_000 },
  );
  // bin/mkimg.js runs the bundle of dist/: make it again from what tsc wrote.
  spawnSync(process.execPath, [join(PROJECT_ROOT, 'scripts/bundle.mjs')], {
    cwd: PROJECT_ROOT,
    stdio: 'ignore',
    timeout: 300_000,
  });
  for (const f of need) if (!existsSync(join(DIST, f))) throw new Error(`tsc did not produce dist/${f}`);
}

/** Run the real mkimg command (helpers/cli.ts's mkimg), after making sure dist/ is built and current. */
export function cli(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): CliResult {
  ensureDist();
  return mkimg(args, opts);
}

/** A fresh key pair (mkimg key generate) under `prefix`, and a signer for manifests with it. */
export function releaseKey(prefix: string): {
  publicPath: string;
  secretPath: string;
  fingerprint: string;
  sign(manifest: string): string;
} {
  const k = cli(['key', 'generate', '--name', 'Release', '--email', 'release@example.org', '-o', prefix, '--json']);
  if (k.code !== 0) throw new Error(`mkimg key generate failed (${k.code}): ${k.stderr}`);
  const key = JSON.parse(k.stdout) as { publicPath: string; secretPath: string; fingerprint: string };
  return {
    ...key,
    sign(manifest: string): string {
      const s = cli(['sign', manifest, '--key', key.secretPath, '--json']);
      if (s.code !== 0) throw new Error(`mkimg sign failed (${s.code}): ${s.stderr}`);
      return JSON.parse(s.stdout).output as string;
    },
  };
}

/** A user error: its exit code, one "mkimg: error:" line, and no stack trace. */
export function expectCleanFailure(r: CliResult, code: number, message: RegExp, expect: (v: unknown) => any): void {
  expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code });
  expect(r.stderr).toMatch(/^mkimg: error: /);
  expect(r.stderr).toMatch(message);
  expect(r.stderr).not.toMatch(/\n\s+at .*\(.*:\d+:\d+\)|internal error/);
}

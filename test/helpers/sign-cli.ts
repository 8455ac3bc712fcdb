/**
 * Run the real mkimg CLI for the sign/verify/diff tests. Uses bin/mkimg.js
 * once src/cli/main.ts registers these commands; until then a small driver
 * in dist/ registers them the same way main.ts does (commander + reportError).
 * Builds dist/ with tsc when it is missing.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MKIMG, PROJECT_ROOT, type CliResult } from './cli.js';

const DIST = join(PROJECT_ROOT, 'dist');

export function ensureDist(): void {
  const need = ['cli/main.js', 'cli/commands/verify.js', 'cli/commands/sign.js', 'cli/commands/key.js', 'cli/commands/diff.js', 'verify/verify.js'];
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
  spawnSync(process.execPath, [join(PROJECT_ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(PROJECT_ROOT, 'tsconfig.json')], { cwd: PROJECT_ROOT, stdio: 'ignore', timeout: 300_000 });
  for (const f of need) if (!existsSync(join(DIST, f))) throw new Error(`tsc did not produce dist/${f}`);
}

function entry(): string {
  ensureDist();
  const main = readFileSync(join(DIST, 'cli/main.js'), 'utf8');
  if (['registerVerify', 'registerSign', 'registerKey', 'registerDiff'].every((r) => main.includes(r))) return MKIMG;
  const driver = join(DIST, '.sign-test-driver.mjs');
  writeFileSync(
    driver,
    `import { Command } from 'commander';
import { makeProgram } from './cli/main.js';
import { registerSign } from './cli/commands/sign.js';
import { registerKey } from './cli/commands/key.js';
import { registerVerify } from './cli/commands/verify.js';
import { registerDiff } from './cli/commands/diff.js';
import { reportError } from './cli/output.js';
const program = makeProgram();
registerSign(program); registerKey(program); registerVerify(program); registerDiff(program);
try { await program.parseAsync(process.argv); }
catch (e) {
  if (typeof e?.code === 'string' && e.code.startsWith('commander.')) process.exitCode = e.code === 'commander.helpDisplayed' || e.code === 'commander.help' ? 0 : 2;
  else process.exitCode = reportError(e, process.argv.includes('--json'));
}
`,
  );
  return driver;
}

export function cli(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): CliResult {
  const r: SpawnSyncReturns<string> = spawnSync(process.execPath, [entry(), ...args], {
    cwd: opts.cwd ?? PROJECT_ROOT,
    env: opts.env ?? process.env,
    encoding: 'utf8',
    timeout: 300_000,
    maxBuffer: 64 << 20,
  });
  return { code: r.status ?? (r.signal ? 128 : 1), stdout: r.stdout, stderr: r.stderr };
}

/** A user error: its exit code, one "mkimg: error:" line, and no stack trace. */
export function expectCleanFailure(r: CliResult, code: number, message: RegExp, expect: (v: unknown) => any): void {
  expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code });
  expect(r.stderr).toMatch(/^mkimg: error: /);
  expect(r.stderr).toMatch(message);
  expect(r.stderr).not.toMatch(/\n\s+at .*\(.*:\d+:\d+\)|internal error/);
}

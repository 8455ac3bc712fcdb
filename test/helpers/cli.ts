/** Run the real mkimg command (bin/mkimg.js → dist/) as a child process. */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

export const PROJECT_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const MKIMG = join(PROJECT_ROOT, 'bin', 'mkimg.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function mkimg(
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string; timeout?: number } = {},
): CliResult {
  const r = spawnSync(process.execPath, [MKIMG, ...args], {
    cwd: opts.cwd ?? PROJECT_ROOT,
    env: opts.env ?? process.env,
    input: opts.input,
    encoding: 'utf8',
    timeout: opts.timeout ?? 300_000,
    maxBuffer: 64 << 20,
  });
  return { code: r.status ?? (r.signal ? 128 : 1), stdout: r.stdout, stderr: r.stderr };
}

export function mkimgJson<T = Record<string, unknown>>(
  args: string[],
  opts: Parameters<typeof mkimg>[1] = {},
): { code: number; json: T; stderr: string } {
  const r = mkimg([...args, '--json'], opts);
  let json: T;
  try {
    json = JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(
      `mkimg ${args.join(' ')} --json printed no JSON (exit ${r.code}):\nstdout: ${r.stdout}\nstderr: ${r.stderr}`,
    );
  }
  return { code: r.code, json, stderr: r.stderr };
}

/**
 * The same, without blocking the event loop: needed when the test process
 * itself serves the child (an in-process HTTP server or proxy).
 */
export function mkimgAsync(
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {},
): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [MKIMG, ...args], {
      cwd: opts.cwd ?? PROJECT_ROOT,
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeout ?? 300_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
}

export async function mkimgJsonAsync<T = Record<string, unknown>>(
  args: string[],
  opts: Parameters<typeof mkimgAsync>[1] = {},
): Promise<{ code: number; json: T; stderr: string }> {
  const r = await mkimgAsync([...args, '--json'], opts);
  try {
    return { code: r.code, json: JSON.parse(r.stdout) as T, stderr: r.stderr };
  } catch {
    throw new Error(
      `mkimg ${args.join(' ')} --json printed no JSON (exit ${r.code}):\nstdout: ${r.stdout}\nstderr: ${r.stderr}`,
    );
  }
}

const NOBODY = ['--reuid=65534', '--regid=65534', '--clear-groups'];

/**
 * A command line that runs the real mkimg as uid/gid 65534 (the rootless
 * tests; needs root). A checkout below a folder that user cannot enter (mktemp
 * -d makes them 0700) is bound, in a private mount namespace, at a fresh
 * readable path first, so the test runs wherever the checkout is. `done()`
 * removes that path.
 */
export function mkimgAsNobody(args: string[], env: Record<string, string>): { argv: string[]; done: () => void } {
  const envArgs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  if (spawnSync('setpriv', [...NOBODY, 'test', '-r', MKIMG]).status === 0)
    return { argv: ['setpriv', ...NOBODY, 'env', ...envArgs, process.execPath, MKIMG, ...args], done: () => {} };
  const at = mkdtempSync(join(tmpdir(), 'mkimg-checkout-'));
  chmodSync(at, 0o755);
  const node = process.execPath.startsWith(PROJECT_ROOT + '/')
    ? at + process.execPath.slice(PROJECT_ROOT.length)
    : process.execPath;
  const script = 'mount --bind "$0" "$1" && shift && exec "$@"'; // $0: the checkout, $1: where
  return {
    argv: [
      'unshare',
      '-m',
      '--propagation',
      'private',
      'sh',
      '-c',
      script,
      PROJECT_ROOT,
      at,
      'setpriv',
      ...NOBODY,
      'env',
      ...envArgs,
      node,
      join(at, 'bin', 'mkimg.js'),
      ...args,
    ],
    done: () => rmSync(at, { recursive: true, force: true }),
  };
}

/** Whether mkimgAsNobody can work here: root, with setpriv and unshare. */
export const canRunAsNobody =
  process.getuid?.() === 0 &&
  spawnSync('setpriv', ['--version']).status === 0 &&
  spawnSync('unshare', ['--version']).status === 0;

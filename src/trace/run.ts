/**
 * Run a program inside a staging root under the native tracer (tracer/mkimg-trace)
 * and collect its exit code, output and path events.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MkimgError } from '../util/errors.js';
import { parseEvents, type TraceEvent } from './events.js';

export type { TraceEvent } from './events.js';

export interface RunTracedOptions {
  /** Host directory whose contents become "/" (read-only) in the sandbox. */
  rootDir: string;
  /**
   * Read-only host directories below rootDir, topmost first: "/" is then the
   * overlay of rootDir on them (a cached package root shared, never copied).
   */
  layers?: readonly string[];
  /** A file of NUL-separated image paths the sandbox's root leaves out (a proof round's minimized root). */
  hide?: string;
  /** argv; argv[0] without a "/" is searched in env.PATH (or a default PATH) inside the root. */
  args: string[];
  /** The whole environment: nothing is inherited. */
  env: Record<string, string>;
  cwd?: string;
  uid?: number;
  gid?: number;
  /** Text fed to stdin (default: /dev/null). */
  stdin?: string;
  timeoutSeconds: number;
  /** false: the same sandbox without ptrace/seccomp (no events). */
  trace: boolean;
  hostname?: string;
}

export interface RunTracedResult {
  /** Program exit code; 128+N when killed by signal N; 124 on timeout; 126/127 when it could not be executed. */
  exitCode: number;
  stdout: Buffer;
  stderr: Buffer;
  events: TraceEvent[];
  /** What the tracer itself printed (exec failures, timeout notice). */
  tracerMessages: string;
  timedOut: boolean;
}

export const TRACER_EXIT = { timeout: 124, tracerFailed: 125, cannotExecute: 126, notFound: 127 } as const;

/** Where the tracer binary is: $MKIMG_TRACER, else <project root>/tracer/mkimg-trace (from dist/trace/ or src/trace/). */
export function tracerPath(): string {
  const env = process.env.MKIMG_TRACER;
  if (env) return env;
  return fileURLToPath(new URL('../../tracer/mkimg-trace', import.meta.url));
}

export function tracerArgs(
  opts: RunTracedOptions,
  files: { events?: string; stdin?: string; stdout: string; stderr: string },
): string[] {
  const a: string[] = ['--root', opts.rootDir, '--timeout', String(Math.max(1, Math.ceil(opts.timeoutSeconds)))];
  for (const l of opts.layers ?? []) a.push('--layer', l);
  if (opts.hide !== undefined) a.push('--hide', opts.hide);
  if (opts.trace) a.push('--events', files.events!);
  else a.push('--no-trace');
  if (opts.hostname) a.push('--hostname', opts.hostname);
  if (opts.cwd) a.push('--cwd', opts.cwd);
  if (opts.uid !== undefined) a.push('--uid', String(opts.uid));
  if (opts.gid !== undefined) a.push('--gid', String(opts.gid));
  for (const k of Object.keys(opts.env).sort()) {
    if (k === '' || k.includes('='))
      throw new MkimgError('manifest', `environment variable name ${JSON.stringify(k)} is not valid`, {
        hint: 'names must be non-empty and must not contain "="',
      });
    a.push('--env', `${k}=${opts.env[k]}`);
  }
  if (files.stdin) a.push('--stdin', files.stdin);
  a.push('--stdout', files.stdout, '--stderr', files.stderr, '--', ...opts.args);
  return a;
}

export async function runTraced(opts: RunTracedOptions): Promise<RunTracedResult> {
  const bin = tracerPath();
  if (!existsSync(bin)) {
    throw new MkimgError('sandbox', `tracer not built: ${bin} is missing; run npm run build`, {
      hint: 'npm run build compiles tracer/mkimg-trace with the system C compiler (make -C tracer)',
    });
  }
  if (opts.args.length === 0)
    throw new MkimgError('manifest', 'a check has no command (args is empty)', {
      hint: 'give the check args, or set config.entrypoint/cmd',
    });
  const tmp = await mkdtemp(join(tmpdir(), 'mkimg-run-'));
  try {
    const files = {
      events: join(tmp, 'events.jsonl'),
      stdout: join(tmp, 'stdout'),
      stderr: join(tmp, 'stderr'),
      stdin: opts.stdin !== undefined ? join(tmp, 'stdin') : undefined,
    };
    if (files.stdin) await writeFile(files.stdin, opts.stdin!);
    const args = tracerArgs(opts, files);
    const { code, messages } = await new Promise<{ code: number; messages: string }>((resolve, reject) => {
      const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { TMPDIR: tmpdir() } });
      const chunks: Buffer[] = [];
      child.stderr!.on('data', (c: Buffer) => chunks.push(c));
      child.on('error', (e) =>
        reject(
          new MkimgError('sandbox', `cannot start the tracer ${bin}: ${e.message}`, { hint: 'run npm run build' }),
        ),
      );
      child.on('close', (c, sig) =>
        resolve({ code: c ?? 128 + (sig ? 9 : 0), messages: Buffer.concat(chunks).toString('utf8') }),
      );
    });
    if (code === TRACER_EXIT.tracerFailed && /^mkimg-trace: /m.test(messages) && !/execve\(/.test(messages)) {
      const first = messages.split('\n').find((l) => l.startsWith('mkimg-trace: ')) ?? messages;
      if (first.includes('chdir(--cwd')) {
        throw new MkimgError(
          'manifest',
          `the working directory ${opts.cwd} does not exist in the image (running ${JSON.stringify(opts.args[0])})`,
          {
            hint: "fix config.workdir or the check's workdir, or add the directory with files:",
          },
        );
      }
      throw new MkimgError(
        'sandbox',
        `the sandbox could not run ${JSON.stringify(opts.args[0])}: ${first.replace(/^mkimg-trace: /, '')}`,
        {
          hint: /CLONE_NEWUSER/.test(first)
            ? 'every check runs in a user namespace of its own: enable user namespaces (sysctl user.max_user_namespaces > 0, and kernel.unprivileged_userns_clone=1 or kernel.apparmor_restrict_unprivileged_userns=0 where those exist)'
            : 'the tracer needs user namespaces, ptrace and seccomp; inside a container, allow them (e.g. --privileged or a seccomp profile that permits unshare/ptrace)',
          details: { tracerMessages: messages },
        },
      );
    }
    const [stdout, stderr, evText] = await Promise.all([
      readFile(files.stdout).catch(() => Buffer.alloc(0)),
      readFile(files.stderr).catch(() => Buffer.alloc(0)),
      opts.trace ? readFile(files.events, 'utf8').catch(() => '') : Promise.resolve(''),
    ]);
    return {
      exitCode: code,
      stdout,
      stderr,
      events: parseEvents(evText),
      tracerMessages: messages,
      timedOut: code === TRACER_EXIT.timeout && /timed out/.test(messages),
    };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

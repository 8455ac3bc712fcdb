/**
 * Start the sandbox: tracer/mkimg-trace in --no-trace mode (or traced, for
 * --explain), with the caller's stdin, stdout and stderr, in a session of its
 * own (so a terminal's signals reach mkimg only, which forwards them: the
 * program sees each signal once). The tracer's own messages come on fd 3, so
 * they are told apart from the program's stderr.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MkimgError } from '../util/errors.js';

export interface LaunchSpec {
  root: string;
  argv: string[];
  env: string[];
  cwd: string;
  uid: number;
  gid: number;
  binds: string[];
  network: 'none' | 'host';
  writable: boolean;
  /** Trace into this events file (--explain). */
  events?: string;
}

export function tracerBinary(): string {
  return process.env.MKIMG_TRACER || fileURLToPath(new URL('../../tracer/mkimg-trace', import.meta.url));
}

export function launchArgs(s: LaunchSpec): string[] {
  const a = [
    '--messages-fd',
    '3',
    '--root',
    s.root,
    s.events ? '--events' : '--no-trace',
    ...(s.events ? [s.events] : []),
    '--cwd',
    s.cwd || '/',
    '--uid',
    String(s.uid),
    '--gid',
    String(s.gid),
    '--stdin',
    '-',
  ];
  if (s.network === 'host') a.push('--network', 'host');
  if (s.writable) a.push('--writable');
  for (const b of s.binds) a.push('--bind', b);
  for (const e of s.env) a.push('--env', e);
  a.push('--', ...s.argv);
  return a;
}

const FORWARD: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];
const SIGNUM: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGTERM: 15,
};

/** Run it; resolves with the program's exit code (after turning the tracer's own failures into MkimgErrors). */
export function launch(s: LaunchSpec): Promise<number> {
  const bin = tracerBinary();
  if (!existsSync(bin))
    return Promise.reject(
      new MkimgError('sandbox', `tracer not built: ${bin} is missing`, { hint: 'run npm run build (make -C tracer)' }),
    );
  return new Promise((resolve, reject) => {
    const child = spawn(bin, launchArgs(s), {
      stdio: ['inherit', 'inherit', 'inherit', 'pipe'],
      detached: true,
      env: { TMPDIR: process.env.TMPDIR || '/tmp' },
    });
    const forward = (sig: NodeJS.Signals) => {
      child.kill(sig);
    };
    for (const sig of FORWARD) process.on(sig, forward);
    const chunks: Buffer[] = [];
    (child.stdio[3] as NodeJS.ReadableStream).on('data', (c: Buffer) => chunks.push(c));
    child.on('error', (e) =>
      reject(new MkimgError('sandbox', `cannot start the tracer ${bin}: ${e.message}`, { hint: 'run npm run build' })),
    );
    child.on('close', (code, signal) => {
      for (const sig of FORWARD) process.off(sig, forward);
      const messages = Buffer.concat(chunks).toString('utf8');
      const rc = code ?? 128 + (SIGNUM[signal ?? ''] ?? 9);
      const first = messages
        .split('\n')
        .find((l) => l.startsWith('mkimg-trace: '))
        ?.replace(/^mkimg-trace: /, '');
      if (rc === 125 && first) {
        if (first.startsWith('chdir(--cwd'))
          return reject(
            new MkimgError('usage', `the working directory ${s.cwd} does not exist in the image`, {
              hint: 'give an existing directory with -w, or use --writable',
            }),
          );
        if (first.startsWith('--bind target'))
          return reject(
            new MkimgError('usage', first.replace('--bind target', '-v target'), {
              hint: 'mount onto a path the image has, a new top-level name, or a path under /tmp; or add --writable',
            }),
          );
        return reject(
          new MkimgError('sandbox', `the sandbox could not start: ${first}`, {
            hint: 'mkimg run needs user namespaces (or root) and mount namespaces; inside a container, allow them',
          }),
        );
      }
      if ((rc === 126 || rc === 127) && first?.startsWith('execve(')) {
        process.stderr.write(`mkimg: error: cannot run ${JSON.stringify(s.argv[0])}: ${first}\n`);
      } else if (messages) process.stderr.write(messages);
      resolve(rc);
    });
  });
}

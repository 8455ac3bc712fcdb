import type { Command } from 'commander';
import { existsSync, statSync, writeFileSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { action } from '../output.js';
import { collect } from '../options.js';
import { MkimgError } from '../../util/errors.js';

interface TraceFlags {
  env: string[];
  cwd?: string;
  user?: string;
  timeout: string;
  stdin?: string;
  events?: string;
  trace: boolean;
  json?: boolean;
}

export function registerTrace(program: Command): void {
  program
    .command('trace')
    .summary('run a command in a root directory under the tracer and list the paths it touches')
    .description(
      'Run ARGS inside DIR the way minimization runs checks: DIR read-only as "/", new namespaces,\n' +
        "no network, only the given environment, every path syscall traced. Prints the program's exit\n" +
        'code and output, and the paths of DIR it touched (symlink hops and directories included).',
    )
    .argument('<dir>', 'root directory (e.g. an unpacked image rootfs)')
    .argument('<args...>', 'command and arguments, after --')
    .option('-e, --env <K=V>', 'environment variable, repeatable (nothing is inherited)', collect, [])
    .option('--cwd <dir>', 'working directory inside the root')
    .option('--user <uid[:gid]>', 'numeric user (and group) to run as')
    .option('--timeout <seconds>', 'kill the process tree after this many seconds', '60')
    .option('--stdin <file>', 'feed this file to stdin (default: empty)')
    .option('--events <file>', 'also write the raw events (JSON lines, see SPEC.md)')
    .option('--no-trace', 'run in the same sandbox without tracing')
    .option('--json', 'print one JSON object: exitCode, stdout, stderr, paths')
    .addHelpText(
      'after',
      `
Examples:
  $ mkimg trace ./rootfs -- /usr/bin/python3.11 -c 'import json'
  $ mkimg trace ./rootfs -e PATH=/usr/bin -e LANG=C.UTF-8 -- sh -c 'ls /etc'
  $ mkimg trace ./rootfs --json --events ev.jsonl -- /app/server --selftest | jq .paths

Exit codes: 0 ok (whatever the program returned: see exitCode), 2 usage, 14 sandbox.`,
    )
    .action(
      action(
        async (dir: string, args: string[], flags: TraceFlags) => {
          const rootDir = resolve(dir);
          if (!existsSync(rootDir) || !statSync(rootDir).isDirectory())
            throw new MkimgError('usage', `${dir} is not a directory`, { hint: 'give the root directory to run in' });
          const env: Record<string, string> = {};
          for (const kv of flags.env) {
            const i = kv.indexOf('=');
            if (i <= 0) throw new MkimgError('usage', `--env ${JSON.stringify(kv)}: expected K=V`);
            env[kv.slice(0, i)] = kv.slice(i + 1);
          }
          let uid: number | undefined;
          let gid: number | undefined;
          if (flags.user) {
            const m = /^(\d+)(?::(\d+))?$/.exec(flags.user);
            if (!m)
              throw new MkimgError('usage', `--user ${JSON.stringify(flags.user)}: expected UID or UID:GID (numbers)`);
            uid = Number(m[1]);
            gid = Number(m[2] ?? m[1]);
          }
          const timeout = Number(flags.timeout);
          if (!Number.isFinite(timeout) || timeout <= 0)
            throw new MkimgError('usage', `--timeout ${flags.timeout}: expected a positive number of seconds`);
          const { runTraced } = await import('../../trace/run.js');
          const { tracedPaths } = await import('../../minimize/keep.js');
          const r = await runTraced({
            rootDir,
            args,
            env,
            cwd: flags.cwd,
            uid,
            gid,
            stdin: flags.stdin ? readFileSync(flags.stdin, 'utf8') : undefined,
            timeoutSeconds: timeout,
            trace: flags.trace,
          });
          if (flags.events)
            writeFileSync(
              flags.events,
              r.events.map((e) => JSON.stringify(e)).join('\n') + (r.events.length ? '\n' : ''),
            );
          const paths = await tracedPaths(rootDir, r.events);
          const stdout = r.stdout.toString('utf8');
          const stderr = r.stderr.toString('utf8') + r.tracerMessages;
          return {
            json: { exitCode: r.exitCode, timedOut: r.timedOut, stdout, stderr, events: r.events.length, paths },
            human: [
              `exit code: ${r.exitCode}${r.timedOut ? ' (timed out)' : ''}`,
              ...(stdout
                ? [
                    'stdout:',
                    ...stdout
                      .replace(/\n$/, '')
                      .split('\n')
                      .map((l) => '  ' + l),
                  ]
                : []),
              ...(stderr
                ? [
                    'stderr:',
                    ...stderr
                      .replace(/\n$/, '')
                      .split('\n')
                      .map((l) => '  ' + l),
                  ]
                : []),
              ...(flags.trace
                ? [
                    `${r.events.length} events; ${paths.length} paths of the root touched:`,
                    ...paths.map((p) => '  ' + p),
                  ]
                : []),
            ],
          };
        },
        (_d: string, _a: string[], flags: TraceFlags) => Boolean(flags.json),
      ),
    );
}

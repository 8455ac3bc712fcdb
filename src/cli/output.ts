/**
 * How every command talks to the terminal: one function turns a command's
 * result into human text or one JSON object, and turns a thrown error into one
 * clear message and its documented exit code. No stack traces for MkimgError.
 */
import { EXIT_CODES, isMkimgError } from '../util/errors.js';
import { environmentError } from '../util/environment.js';

export interface CommandOutput {
  /** The object printed with --json (one line, to stdout). */
  json: Record<string, unknown>;
  /** Lines printed without --json (to stdout). */
  human: string[];
  /** Exit code when the command completed but reports failure (e.g. lock --check stale). */
  exitCode?: number;
}

/**
 * A reader that goes away (`mkimg lock --check | head -1`) must change nothing
 * but what is printed: EPIPE on stdout or stderr is swallowed (later writes are
 * dropped) and the exit code stays the command's own.
 */
export function tolerateClosedPipes(): void {
  for (const s of [process.stdout, process.stderr]) {
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE' || e.code === 'ERR_STREAM_DESTROYED' || e.code === 'ERR_STREAM_WRITE_AFTER_END') return;
      throw e;
    });
  }
}

/** Progress and notes go to stderr, and only when stderr is a terminal and --json is off. */
export function progressEnabled(json: boolean): boolean {
  return !json && Boolean(process.stderr.isTTY) && !process.env.CI;
}

export function note(json: boolean, message: string): void {
  if (!json) process.stderr.write(message + '\n');
}

/**
 * Wrap a command body for commander's .action(). `run` gets the parsed options
 * and returns what to print. Exit codes follow src/util/errors.ts.
 */
export function action<A extends unknown[]>(
  run: (...args: A) => Promise<CommandOutput>,
  jsonOf: (...args: A) => boolean,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    const json = jsonOf(...args);
    try {
      const out = await run(...args);
      if (json) process.stdout.write(JSON.stringify(out.json) + '\n');
      else for (const line of out.human) process.stdout.write(line + '\n');
      process.exitCode = out.exitCode ?? 0;
    } catch (e) {
      process.exitCode = reportError(e, json);
    }
  };
}

export function reportError(e0: unknown, json: boolean): number {
  // A failure of the machine (disk full, read-only or wrong-typed folder) that
  // no stage wrapped: still one line and the environment exit code.
  const e = environmentError(e0) ?? e0;
  if (isMkimgError(e)) {
    if (json) {
      process.stdout.write(
        JSON.stringify({
          error: { ...(e.details ?? {}), kind: e.kind, exitCode: e.exitCode, message: e.message, hint: e.hint },
        }) + '\n',
      );
    }
    process.stderr.write(`mkimg: error: ${e.message}\n`);
    if (e.hint) process.stderr.write(`mkimg: hint: ${e.hint}\n`);
    return e.exitCode;
  }
  const msg = e instanceof Error ? (e.stack ?? e.message) : String(e);
  if (json)
    process.stdout.write(
      JSON.stringify({ error: { kind: 'internal', exitCode: EXIT_CODES.internal, message: String(e) } }) + '\n',
    );
  process.stderr.write(`mkimg: internal error (a bug; please report it with this text):\n${msg}\n`);
  return EXIT_CODES.internal;
}

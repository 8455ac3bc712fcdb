/**
 * The mkimg command: commander wiring only. Each command lives in
 * src/cli/commands/ and returns what to print; errors map to exit codes in
 * src/util/errors.ts.
 */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { registerBuild } from './commands/build.js';
import { registerDiff } from './commands/diff.js';
import { registerInspect } from './commands/inspect.js';
import { registerKey } from './commands/key.js';
import { registerLock } from './commands/lock.js';
import { registerPull } from './commands/pull.js';
import { registerPush } from './commands/push.js';
import { registerSign } from './commands/sign.js';
import { registerVerify } from './commands/verify.js';
import { registerTrace } from './commands/trace.js';
import { registerRun } from './commands/run.js';
import { reportError, tolerateClosedPipes } from './output.js';
import { flowHelpTexts, HELP_CONFIG, usageHint } from './help.js';
import { registerCompletion } from './completion.js';

export { exitWhenIdle } from './exit.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

export function makeProgram(): Command {
  const program = new Command('mkimg')
    .version(pkg.version)
    .description('Deterministic, minimal, verifiable OCI images from pinned Debian packages.')
    .configureHelp(HELP_CONFIG)
    // commander's own messages ("error: unknown option …") get the prefix every mkimg error has.
    .configureOutput({ writeErr: (s) => process.stderr.write(s), outputError: (s, write) => write(`mkimg: ${s}`) })
    .exitOverride();
  registerBuild(program);
  registerLock(program);
  registerSign(program);
  registerKey(program);
  registerVerify(program);
  registerDiff(program);
  registerInspect(program);
  registerPush(program);
  registerPull(program);
  registerTrace(program);
  registerRun(program);
  registerCompletion(program);
  program.addHelpText(
    'after',
    `
A typical session:
  $ mkimg lock manifest.yaml              # resolve and pin Debian packages and file inputs
  $ mkimg sign manifest.yaml --key me.asc # detached OpenPGP signature: manifest.yaml.sig
  $ mkimg build manifest.yaml -o app.tar  # the same bytes on every machine
  $ mkimg verify app.tar manifest.yaml.sig --keyring team.asc

See SPEC.md for the manifest format, the image format, and exit codes.`,
  );
  flowHelpTexts(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  // The staging root is a real directory that checks run in, as other users
  // too: its on-disk modes must not depend on the caller's umask.
  process.umask(0o022);
  tolerateClosedPipes();
  const program = makeProgram();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    const err = e as { code?: string; exitCode?: number };
    if (typeof err.code === 'string' && err.code.startsWith('commander.')) {
      // help and version exit 0; usage errors were already printed by commander
      process.exitCode =
        err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help'
          ? 0
          : 2;
      if (process.exitCode === 2) process.stderr.write(`${usageHint(program, argv.slice(2))}\n`);
      return;
    }
    process.exitCode = reportError(e, argv.includes('--json'));
  }
}

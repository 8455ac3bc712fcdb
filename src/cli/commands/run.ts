import type { Command } from 'commander';

/**
 * `mkimg run` is parsed by src/run/args.ts (bin/mkimg.js sends `run` straight
 * to dist/bundle/run.js); this entry lists it and its options in `mkimg --help`
 * and the shell completions (src/cli/completion.ts reads this tree), and serves
 * callers that go through main(), handing the raw arguments to runMain.
 */
export function registerRun(program: Command): void {
  program
    .command('run')
    .summary(
      'run an image (tar, OCI layout or registry reference) in a sandbox; --explain says what minimization removed',
    )
    .helpOption(false)
    .option('--platform <os/arch>', 'the image to pick from a multi-platform index')
    .option('-e, --env <K=V>', 'set an environment variable (repeatable)')
    .option('-v, --volume <HOST:IMG[:ro]>', 'bind-mount a host path (repeatable)')
    .option('-w, --workdir <dir>', 'working directory inside the image')
    .option('-u, --user <user>', 'UID[:GID] or NAME[:GROUP] from the image')
    .option('--network <mode>', 'none (default) or host')
    .option('--entrypoint <program>', "replace the image's entrypoint")
    .option('--writable', 'a writable root whose changes vanish at exit')
    .option('--explain', 'run traced; name the removed files the program missed')
    .option('--cache-dir <dir>', "mkimg's cache")
    .option('--insecure', 'registry references: plain HTTP')
    .option('-h, --help', 'usage of mkimg run')
    .allowUnknownOption()
    .allowExcessArguments()
    .argument('[args...]')
    .action(async () => {
      const i = process.argv.indexOf('run');
      const { runMain } = await import('../../run/main.js');
      process.exitCode = await runMain(process.argv.slice(i + 1));
    });
}

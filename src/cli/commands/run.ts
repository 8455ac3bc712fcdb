import type { Command } from 'commander';

/**
 * `mkimg run` is parsed by src/run/args.ts (bin/mkimg.js sends `run` straight
 * to dist/bundle/run.js); this entry lists it in `mkimg --help` and serves
 * callers that go through main().
 */
export function registerRun(program: Command): void {
  program
    .command('run')
    .summary(
      'run an image (tar, OCI layout or registry reference) in a sandbox; --explain says what minimization removed',
    )
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument('[args...]')
    .action(async () => {
      const i = process.argv.indexOf('run');
      const { runMain } = await import('../../run/main.js');
      process.exitCode = await runMain(process.argv.slice(i + 1));
    });
}

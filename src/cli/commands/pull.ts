import type { Command } from 'commander';
import { action, progressEnabled } from '../output.js';
import { MkimgError } from '../../util/errors.js';

interface PullFlags {
  output: string;
  json?: boolean;
  insecure?: boolean;
  name?: string;
  authFile?: string;
  platform?: string;
}

export function registerPull(program: Command): void {
  program
    .command('pull')
    .summary('pull an image from an OCI registry into an image tar')
    .description(
      'Download an image (OCI or Docker v2 manifest) with every blob checked against its digest, and\n' +
        'write the same tar format as `mkimg build`. An image index is pulled whole (every platform, each\n' +
        'checked against its config), or one platform of it with --platform. The tar is written to a\n' +
        "temporary name then renamed. NAME:TAG in the tar's index.json and manifest.json is --name,\n" +
        'or the repository path and the pulled tag; with the name and tag of the manifest it was built\n' +
        'from, a pulled mkimg image is byte-identical to the built one, so `mkimg verify` works on it.',
    )
    .argument('<reference>', 'HOST[:PORT]/REPOSITORY[:TAG|@sha256:DIGEST]')
    .requiredOption('-o, --output <file>', 'image tar to write')
    .option(
      '--json',
      'print one JSON object: reference, output, manifestDigest, configDigest (one image) or platforms (an index), name, sizeBytes, layers',
    )
    .option('--name <name[:tag]>', 'NAME[:TAG] recorded in the tar (default: repository path and pulled tag)')
    .option('--platform <os/arch[/variant]>', 'the one platform to pull from an image index (default: the whole index)')
    .option('--insecure', 'allow plain HTTP or unverified TLS to a non-loopback registry')
    .option('--auth-file <file>', 'registry auth file read before the standard ones')
    .addHelpText(
      'after',
      `
Examples:
  $ mkimg pull registry.example.net/team/app:1.4 -o app.tar
  $ mkimg pull 127.0.0.1:5000/app@sha256:4f1c… -o app.tar --name app:1.4 --json
  $ mkimg pull registry.example.net/team/app:1.4 -o app-arm64.tar --platform linux/arm64
  $ mkimg pull 127.0.0.1:5000/app:1.4 -o app.tar && mkimg verify app.tar manifest.yaml.sig --no-rebuild

Exit codes: 0 pulled, 2 bad reference, 12 the registry refused, failed or served bad content.`,
    )
    .action(
      action(
        async (reference: string, flags: PullFlags) => {
          let platform: { os: string; architecture: string; variant?: string } | undefined;
          if (flags.platform) {
            const [os, architecture, variant] = flags.platform.split('/');
            if (!os || !architecture) {
              throw new MkimgError(
                'usage',
                `--platform ${flags.platform}: expected OS/ARCH[/VARIANT], e.g. linux/arm64`,
              );
            }
            platform = { os, architecture, variant };
          }
          const { pullImage } = await import('../../registry/pull.js');
          const r = (await pullImage(reference, flags.output, {
            insecure: flags.insecure,
            name: flags.name,
            authFile: flags.authFile,
            platform,
            progress: progressEnabled(Boolean(flags.json)),
          }))!;
          return {
            json: { ...r },
            human: [
              `pulled ${r.reference} into ${r.output} as ${r.name}`,
              ...(r.platforms
                ? [
                    `index digest:    ${r.manifestDigest}`,
                    ...r.platforms.map((p) => `  ${p.platform.padEnd(15)} ${p.manifestDigest}`),
                  ]
                : [`manifest digest: ${r.manifestDigest}`, `config digest:   ${r.configDigest}`]),
            ],
          };
        },
        (_r: string, flags: PullFlags) => Boolean(flags.json),
      ),
    );
}

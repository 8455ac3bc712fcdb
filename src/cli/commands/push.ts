import type { Command } from 'commander';
import { action, progressEnabled } from '../output.js';
import { MkimgError } from '../../util/errors.js';

interface PushFlags {
  json?: boolean;
  insecure?: boolean;
  mountFrom?: string;
  authFile?: string;
  chunkSize?: string;
  chunkThreshold?: string;
}

function mib(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new MkimgError('usage', `${flag} ${v}: expected a positive number of MiB`);
  return Math.round(n * 1024 * 1024);
}

export function registerPush(program: Command): void {
  program
    .command('push')
    .summary('push an image tar to an OCI registry')
    .description(
      'Upload an image tar written by `mkimg build` (or `mkimg pull`) to a registry with the OCI\n' +
        'distribution API. Blobs the registry already has are skipped (HEAD), blobs another repository\n' +
        'on the same registry has are mounted (--mount-from), large blobs go in chunks; the manifest goes\n' +
        "last and the digest the registry answers is checked against the image's. An image of several\n" +
        "platforms goes whole: every platform's blobs and manifest, then the image index under the tag.\n" +
        'Credentials come from $REGISTRY_AUTH_FILE, ${XDG_RUNTIME_DIR}/containers/auth.json or\n' +
        '~/.docker/config.json.\n' +
        'Plain HTTP is used for loopback registries only, unless --insecure.',
    )
    .argument('<image>', 'image tar')
    .argument('<reference>', "HOST[:PORT]/REPOSITORY[:TAG] (default tag: the image's own tag)")
    .option(
      '--json',
      'print one JSON object: reference, manifestDigest, configDigest (one image) or platforms (an index), blobsUploaded, blobsSkipped, blobsMounted, bytesUploaded',
    )
    .option('--insecure', 'allow plain HTTP or unverified TLS to a non-loopback registry')
    .option('--mount-from <repo>', 'another repository on the same registry to mount blobs from')
    .option('--auth-file <file>', 'registry auth file read before the standard ones')
    .option('--chunk-threshold <MiB>', 'blobs this large or larger are uploaded in chunks (default 16)')
    .option('--chunk-size <MiB>', "chunk size (default 64; raised to the registry's OCI-Chunk-Min-Length)")
    .addHelpText(
      'after',
      `
Examples:
  $ mkimg push app.tar registry.example.net/team/app:1.4
  $ mkimg push app.tar 127.0.0.1:5000/app               # tag from the image's index.json
  $ mkimg push app.tar registry.example.net/team/app:1.4 --mount-from team/base --json

Exit codes: 0 pushed, 2 bad reference, 7 the image tar is damaged, 12 the registry refused or failed.`,
    )
    .action(
      action(
        async (image: string, reference: string, flags: PushFlags) => {
          const { pushImage } = await import('../../registry/push.js');
          const r = await pushImage(image, reference, {
            insecure: flags.insecure,
            mountFrom: flags.mountFrom,
            authFile: flags.authFile,
            chunkSize: mib('--chunk-size', flags.chunkSize),
            chunkThreshold: mib('--chunk-threshold', flags.chunkThreshold),
            progress: progressEnabled(Boolean(flags.json)),
          });
          return {
            json: { ...r },
            human: [
              `pushed ${r.reference}`,
              ...(r.platforms
                ? [
                    `index digest:    ${r.manifestDigest}`,
                    ...r.platforms.map((p) => `  ${p.platform.padEnd(15)} ${p.manifestDigest}`),
                  ]
                : [`manifest digest: ${r.manifestDigest}`, `config digest:   ${r.configDigest}`]),
              `blobs: ${r.blobsUploaded} uploaded, ${r.blobsSkipped} already present, ${r.blobsMounted} mounted (${(r.bytesUploaded / 1e6).toFixed(1)} MB sent)`,
            ],
          };
        },
        (_i: string, _r: string, flags: PushFlags) => Boolean(flags.json),
      ),
    );
}

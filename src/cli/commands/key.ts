import type { Command } from 'commander';
import { action } from '../output.js';

interface KeyGenFlags {
  name: string;
  email: string;
  output?: string;
  passphraseFile?: string;
  expires?: string;
  json?: boolean;
}

export function registerKey(program: Command): void {
  const key = program
    .command('key')
    .summary('manage signing keys')
    .description('Signing keys for mkimg sign (for users without GnuPG or Sequoia).');
  key
    .command('generate')
    .summary('make a fresh Ed25519 OpenPGP key pair')
    .description(
      'Write a new OpenPGP v4 Ed25519 key pair: the secret key (mode 0600) and the public key, both\n' +
        'ASCII-armored. Existing files are never overwritten. -o PREFIX names the files\n' +
        'PREFIX.secret.asc and PREFIX.public.asc; if PREFIX is a folder (or ends in /), they are\n' +
        'PREFIX/secret.asc and PREFIX/public.asc. Default: secret.asc and public.asc here.',
    )
    .requiredOption('--name <name>', "the key holder's name (user ID)")
    .requiredOption('--email <email>', "the key holder's email (user ID)")
    .option('-o, --output <prefix>', 'where to write the pair (see above)')
    .option('--passphrase-file <file>', 'protect the secret key with the passphrase in this file (first line)')
    .option('--expires <days>', 'days until the key expires (default: never)')
    .option('--json', 'print one JSON object: secretPath, publicPath, fingerprint, userID')
    .addHelpText(
      'after',
      `
Examples:
  $ mkimg key generate --name "Release Team" --email release@example.org
  $ mkimg key generate --name CI --email ci@example.org -o keys/ci --expires 365
  $ mkimg sign manifest.yaml --key keys/ci.secret.asc

Give the .public.asc file to whoever verifies (mkimg verify --keyring, gpg --import, sqv --keyring).
Exit codes: 0 written, 2 usage (file exists, bad email, missing folder).`,
    )
    .action(
      action(
        async (flags: KeyGenFlags) => {
          const { generateKeyFiles, readPassphraseFile } = await import('../../sign/sign.js');
          let expiresInDays: number | undefined;
          if (flags.expires !== undefined) {
            expiresInDays = Number(flags.expires);
            if (!Number.isInteger(expiresInDays) || expiresInDays <= 0) {
              const { MkimgError } = await import('../../util/errors.js');
              throw new MkimgError(
                'usage',
                `--expires ${JSON.stringify(flags.expires)} is not a positive number of days`,
              );
            }
          }
          const r = await generateKeyFiles({
            name: flags.name,
            email: flags.email,
            prefix: flags.output,
            passphrase: readPassphraseFile(flags.passphraseFile),
            expiresInDays,
          });
          return {
            json: { ...r },
            human: [
              `secret key: ${r.secretPath} (keep it private)`,
              `public key: ${r.publicPath}`,
              `fingerprint: ${r.fingerprint}`,
              `user ID: ${r.userID}`,
            ],
          };
        },
        (flags: KeyGenFlags) => Boolean(flags.json),
      ),
    );
}

import type { Command } from 'commander';
import { action } from '../output.js';

interface SignFlags {
  key: string;
  passphraseFile?: string;
  output?: string;
  json?: boolean;
}

export function registerSign(program: Command): void {
  program
    .command('sign')
    .summary('make a detached OpenPGP signature over a manifest')
    .description(
      'Sign the exact bytes of a manifest: an ASCII-armored, detached, binary-mode (type 0x00)\n' +
        'OpenPGP signature, SHA-512, made with an OpenPGP v4 key (Ed25519, or RSA of 3072 bits or\n' +
        'more; a signing subkey is used when the key has one). It verifies with mkimg verify,\n' +
        'gpg --verify and sqv.',
    )
    .argument('<manifest>', 'manifest.yaml to sign')
    .requiredOption('--key <file>', 'secret key (armored or binary), e.g. from mkimg key generate')
    .option('--passphrase-file <file>', "file whose first line is the key's passphrase")
    .option('-o, --output <file>', 'signature to write (default: <manifest>.sig)')
    .option('--json', 'print one JSON object: output, fingerprint, signingKeyFingerprint, manifestSha256')
    .addHelpText(
      'after',
      `
Examples:
  $ mkimg key generate --name "Release Team" --email release@example.org -o keys/release
  $ mkimg sign manifest.yaml --key keys/release.secret.asc        # writes manifest.yaml.sig
  $ gpg --verify manifest.yaml.sig manifest.yaml                  # GnuPG agrees
  $ sqv --keyring keys/release.public.asc manifest.yaml.sig manifest.yaml

Exit codes: 0 signed, 2 usage (unreadable key, missing passphrase), 3 manifest unreadable,
6 key refused (expired, revoked, weak algorithm, wrong passphrase).`,
    )
    .action(
      action(
        async (manifest: string, flags: SignFlags) => {
          const { readPassphraseFile, signManifest } = await import('../../sign/sign.js');
          const r = await signManifest({
            manifestPath: manifest,
            keyPath: flags.key,
            passphrase: readPassphraseFile(flags.passphraseFile),
            output: flags.output,
          });
          return {
            json: { ...r },
            human: [
              `signed ${manifest} (sha256 ${r.manifestSha256})`,
              `signature: ${r.output}`,
              `signer: ${r.fingerprint}${r.signingKeyFingerprint !== r.fingerprint ? ` (subkey ${r.signingKeyFingerprint})` : ''}`,
            ],
          };
        },
        (_m: string, flags: SignFlags) => Boolean(flags.json),
      ),
    );
}

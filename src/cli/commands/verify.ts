import type { Command } from 'commander';
import { action, progressEnabled } from '../output.js';
import { collect } from '../options.js';

interface VerifyFlags {
  manifest?: string;
  keyring: string;
  rebuild: boolean;
  cacheDir?: string;
  mirror?: string[];
  json?: boolean;
}

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .summary('prove an image is exactly what a signed manifest says')
    .description(
      'In order, stopping at the first failure (each with its own exit code):\n' +
        "  1. signature: the manifest's detached OpenPGP signature is good, by a key in --keyring\n" +
        '     that was valid (not expired, not revoked) when it signed (exit 6)\n' +
        '  2. integrity: every blob matches its digest and size, diff_ids match the layers,\n' +
        '     index.json and manifest.json agree, nothing missing, extra or truncated (exit 7)\n' +
        "  3. binding: the image's org.mkimg.manifest.sha256 label is the manifest's sha256 (exit 8)\n" +
        '  4. rebuild (unless --no-rebuild): building the manifest again gives the same bytes;\n' +
        '     otherwise it says where they differ (as mkimg diff does) (exit 9)\n\n' +
        "The manifest defaults to the signature's name without .sig, else manifest.yaml beside it.",
    )
    .argument('<image>', 'image tar (from mkimg build)')
    .argument('<signature>', 'detached signature of the manifest (e.g. manifest.yaml.sig)')
    .option('--manifest <file>', 'the signed manifest (default: see above)')
    .requiredOption('--keyring <file>', 'trusted public keys (armored or binary)')
    .option('--no-rebuild', 'skip step 4: check signature, integrity and binding only (fast)')
    .option('--cache-dir <dir>', '.deb cache for the rebuild (default $XDG_CACHE_HOME/mkimg)')
    .option('--mirror <suite=url>', 'mirror for a suite during the rebuild, repeatable', collect, [])
    .option('--json', 'print one JSON object (signer, imageId, manifestDigest, steps)')
    .addHelpText(
      'after',
      `
Examples:
  $ mkimg verify app.tar manifest.yaml.sig --keyring team.asc
  $ mkimg verify app.tar manifest.yaml.sig --keyring team.asc --no-rebuild --json
  $ mkimg verify app.tar release.sig --manifest manifest.yaml --keyring team.asc --cache-dir /tmp/fresh

Exit codes: 0 verified, 2 usage, 3 manifest missing, 6 signature, 7 integrity, 8 binding, 9 rebuild differs.`,
    )
    .action(
      action(
        async (image: string, signature: string, flags: VerifyFlags) => {
          const { verifyImage } = await import('../../verify/verify.js');
          const { parseMirrorFlags } = await import('../../debian/mirrors.js');
          const r = await verifyImage({
            image,
            signature,
            manifest: flags.manifest,
            keyring: flags.keyring,
            rebuild: flags.rebuild,
            cacheDir: flags.cacheDir,
            mirrors: parseMirrorFlags(flags.mirror),
            quiet: !progressEnabled(Boolean(flags.json)),
          });
          return {
            json: {
              verified: true,
              image: r.image,
              manifest: r.manifest,
              signer: r.signature.fingerprint,
              signingKey: r.signature.signingKeyFingerprint,
              userIDs: r.signature.userIDs,
              signed: r.signature.created,
              imageId: r.imageId,
              manifestDigest: r.manifestDigest,
              manifestSha256: r.manifestSha256,
              ...(r.platforms ? { platforms: r.platforms } : {}),
              steps: {
                signature: 'ok',
                integrity: 'ok',
                binding: 'ok',
                rebuild: r.rebuild === 'identical' ? 'ok' : 'skipped',
              },
            },
            human: [
              `signature: good, by ${r.signature.fingerprint}${r.signature.userIDs[0] ? ` (${r.signature.userIDs[0]})` : ''}, made ${r.signature.created}`,
              r.platforms
                ? `integrity: ok (index ${r.manifestDigest}: ${r.platforms.map((p) => `${p.platform} image ${p.imageId}`).join(', ')})`
                : `integrity: ok (image ${r.imageId}, manifest ${r.manifestDigest})`,
              `binding:   ok (built from ${r.manifest}, sha256 ${r.manifestSha256})`,
              r.rebuild === 'identical'
                ? `rebuild:   ok (byte-identical${r.platforms ? `, all ${r.platforms.length} platforms` : ''})`
                : 'rebuild:   skipped (--no-rebuild)',
              `verified: ${r.image}`,
            ],
          };
        },
        (_i: string, _s: string, flags: VerifyFlags) => Boolean(flags.json),
      ),
    );
}

/**
 * mkimg sign: an ASCII-armored, detached, binary-mode (type 0x00) OpenPGP
 * signature over the exact bytes of a manifest, hash SHA-512; and mkimg key
 * generate: a fresh OpenPGP v4 Ed25519 key pair for users without GnuPG.
 */
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { writeFileAtomic } from '../util/atomic-write.js';
import { dirname, join, resolve } from 'node:path';
import type * as openpgp from 'openpgp';
import { MkimgError } from '../util/errors.js';
import { openpgp as loadOpenpgp } from '../util/openpgp.js';
import { sha256Hex } from '../util/digest.js';
import { PGP_CONFIG, fpr, keyPolicyProblem, readFileOr, readSecretKey } from './keys.js';
import { ACCEPTED_HASHES, signatureInfo, splitPackets } from './packets.js';

export interface SignResult {
  output: string;
  /** Primary key fingerprint of the signer. */
  fingerprint: string;
  signingKeyFingerprint: string;
  manifestSha256: string;
}

export function readPassphraseFile(path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  const text = readFileOr(
    path,
    'usage',
    'passphrase file',
    'give --passphrase-file a file whose first line is the passphrase',
  ).toString('utf8');
  return text.split(/\r?\n/)[0];
}

export async function signManifest(opts: {
  manifestPath: string;
  keyPath: string;
  passphrase?: string;
  output?: string;
  now?: Date;
}): Promise<SignResult> {
  const bytes = readFileOr(opts.manifestPath, 'usage', 'manifest', 'give the path of the manifest.yaml to sign');
  const key = await readSecretKey(opts.keyPath, opts.passphrase);
  const pgp = await loadOpenpgp();
  let signing: openpgp.PrivateKey | openpgp.Subkey;
  try {
    signing = await key.getSigningKey(undefined, opts.now ?? new Date(), undefined, { ...pgp.config, ...PGP_CONFIG });
  } catch (e) {
    throw new MkimgError('signature', `the key in ${opts.keyPath} cannot sign now: ${(e as Error).message}`, {
      hint: 'the key (or its signing subkey) is expired, revoked, or has no signing capability; use another key',
    });
  }
  const problem = keyPolicyProblem(signing.keyPacket);
  if (problem) {
    throw new MkimgError(
      'signature',
      `the signing key ${fpr(signing.getFingerprint())} in ${opts.keyPath} is refused: ${problem}`,
      {
        hint: 'make an Ed25519 key with mkimg key generate, or use RSA of 3072 bits or more',
      },
    );
  }
  const armored = await pgp.sign({
    message: await pgp.createMessage({ binary: new Uint8Array(bytes) }),
    signingKeys: key,
    signingKeyIDs: signing.getKeyID(),
    detached: true,
    format: 'armored',
    date: opts.now,
    config: { ...PGP_CONFIG, preferredHashAlgorithm: pgp.enums.hash.sha512 },
  });
  // Self-check: what we wrote is what the policy requires.
  const sig = await pgp.readSignature({ armoredSignature: armored as string, config: PGP_CONFIG });
  for (const p of splitPackets(sig.write() as Uint8Array, 'signature')) {
    const info = signatureInfo(p);
    if (info.sigType !== 0 || !ACCEPTED_HASHES.has(info.hashAlgo) || info.version !== 4) {
      throw new MkimgError(
        'internal',
        `openpgp.js produced a signature mkimg would refuse (v${info.version}, type ${info.sigType}, hash ${info.hashAlgo})`,
      );
    }
  }
  const output = resolve(opts.output ?? resolve(opts.manifestPath) + '.sig');
  try {
    writeFileAtomic(output, armored as string, 0o644);
  } catch (e) {
    throw new MkimgError('usage', `cannot write the signature ${output}: ${(e as NodeJS.ErrnoException).code ?? e}`, {
      hint: 'choose a writable path with -o',
    });
  }
  return {
    output,
    fingerprint: fpr(key.getFingerprint()),
    signingKeyFingerprint: fpr(signing.getFingerprint()),
    manifestSha256: sha256Hex(bytes),
  };
}

export interface GeneratedKey {
  secretPath: string;
  publicPath: string;
  fingerprint: string;
  userID: string;
}

/** Where `mkimg key generate -o PREFIX` writes: PREFIX is a folder (existing, or ending in /) → secret.asc/public.asc in it, else PREFIX.secret.asc/PREFIX.public.asc. */
export function keyPaths(prefix: string | undefined): { secretPath: string; publicPath: string } {
  if (
    prefix === undefined ||
    prefix === '' ||
    prefix.endsWith('/') ||
    (existsSync(prefix) && statSync(prefix).isDirectory())
  ) {
    const dir = resolve(prefix || '.');
    return { secretPath: join(dir, 'secret.asc'), publicPath: join(dir, 'public.asc') };
  }
  const p = resolve(prefix);
  return { secretPath: p + '.secret.asc', publicPath: p + '.public.asc' };
}

export async function generateKeyFiles(opts: {
  name: string;
  email: string;
  prefix?: string;
  passphrase?: string;
  expiresInDays?: number;
}): Promise<GeneratedKey> {
  if (!opts.name.trim())
    throw new MkimgError('usage', 'key generate: --name is empty', {
      hint: 'give the name of the key holder, e.g. --name "Release Team"',
    });
  if (!/^[^@\s<>]+@[^@\s<>]+$/.test(opts.email)) {
    throw new MkimgError('usage', `key generate: --email ${JSON.stringify(opts.email)} is not an email address`, {
      hint: 'e.g. --email release@example.org',
    });
  }
  const { secretPath, publicPath } = keyPaths(opts.prefix);
  for (const p of [secretPath, publicPath]) {
    if (existsSync(p))
      throw new MkimgError('usage', `${p} exists; mkimg key generate never overwrites a key`, {
        hint: 'choose another -o prefix, or move the old key away',
      });
  }
  if (!existsSync(dirname(secretPath))) {
    throw new MkimgError('usage', `the folder ${dirname(secretPath)} does not exist`, {
      hint: 'create it first, or choose another -o prefix',
    });
  }
  const pgp = await loadOpenpgp();
  const { privateKey, publicKey } = await pgp.generateKey({
    type: 'ecc',
    curve: 'ed25519Legacy',
    userIDs: [{ name: opts.name, email: opts.email }],
    passphrase: opts.passphrase,
    keyExpirationTime: opts.expiresInDays ? opts.expiresInDays * 86400 : 0,
    format: 'armored',
    config: PGP_CONFIG,
  });
  const key = await pgp.readKey({ armoredKey: publicKey });
  try {
    writeFileSync(secretPath, privateKey, { mode: 0o600, flag: 'wx' });
    writeFileSync(publicPath, publicKey, { mode: 0o644, flag: 'wx' });
  } catch (e) {
    throw new MkimgError('usage', `cannot write the key files: ${(e as NodeJS.ErrnoException).message}`, {
      hint: 'choose a writable -o prefix that names no existing file',
    });
  }
  return { secretPath, publicPath, fingerprint: fpr(key.getFingerprint()), userID: key.getUserIDs()[0] ?? '' };
}

import type * as openpgp from 'openpgp';
import { MkimgError } from '../util/errors.js';
import { readInputFile } from '../util/input-file.js';
import { openpgp as loadOpenpgp } from '../util/openpgp.js';

export const MIN_RSA_BITS = 3072;

/** openpgp.js settings for everything mkimg does with keys and signatures. */
export const PGP_CONFIG: openpgp.PartialConfig = {
  // mkimg applies its own RSA floor (MIN_RSA_BITS) so it can say why it refuses.
  minRSABits: 1024,
  v6Keys: false,
  enableParsingV5Entities: false,
};

export function readFileOr(path: string, kind: 'usage' | 'signature', what: string, hint: string): Buffer {
  return readInputFile(path, what, hint, kind);
}

const ARMOR_BLOCK = /-----BEGIN PGP ([A-Z ,/0-9]+)-----[\s\S]*?-----END PGP \1-----/g;

export function isArmored(bytes: Uint8Array): boolean {
  const head = Buffer.from(bytes.subarray(0, 256)).toString('latin1').trimStart();
  return head.startsWith('-----BEGIN PGP ');
}

/**
 * Read a keyring: one or more ASCII-armored public (or secret) key blocks,
 * possibly concatenated, or binary transferable keys. Secret keys are reduced
 * to their public part.
 */
export async function readKeyring(path: string): Promise<openpgp.PublicKey[]> {
  const bytes = readFileOr(
    path,
    'usage',
    'keyring',
    'give --keyring a file of trusted public keys (armored or binary), e.g. from gpg --export --armor KEYID',
  );
  const keys: openpgp.PublicKey[] = [];
  const pgp = await loadOpenpgp();
  try {
    if (isArmored(bytes)) {
      const text = bytes.toString('utf8');
      const blocks = text.match(ARMOR_BLOCK) ?? [];
      for (const block of blocks) {
        if (!/^-----BEGIN PGP (PUBLIC|PRIVATE) KEY BLOCK-----/.test(block)) continue;
        for (const k of await pgp.readKeys({ armoredKeys: block, config: PGP_CONFIG }))
          keys.push(k.isPrivate() ? k.toPublic() : k);
      }
    } else {
      for (const k of await pgp.readKeys({ binaryKeys: new Uint8Array(bytes), config: PGP_CONFIG }))
        keys.push(k.isPrivate() ? k.toPublic() : k);
    }
  } catch (e) {
    throw new MkimgError('signature', `cannot read the keyring ${path}: ${(e as Error).message}`, {
      hint: 'the keyring must hold OpenPGP v4 public keys (gpg --export --armor, sq key extract-cert)',
    });
  }
  if (keys.length === 0) {
    throw new MkimgError('signature', `the keyring ${path} holds no public keys`, {
      hint: "export the signer's public key into it: gpg --export --armor KEYID > trusted.asc",
    });
  }
  return keys;
}

export async function readSecretKey(path: string, passphrase: string | undefined): Promise<openpgp.PrivateKey> {
  const bytes = readFileOr(
    path,
    'usage',
    'secret key',
    'give --key the ASCII-armored secret key (mkimg key generate, gpg --export-secret-keys --armor KEYID)',
  );
  let keys: openpgp.PrivateKey[];
  const pgp = await loadOpenpgp();
  try {
    keys = isArmored(bytes)
      ? await pgp.readPrivateKeys({ armoredKeys: bytes.toString('utf8'), config: PGP_CONFIG })
      : await pgp.readPrivateKeys({ binaryKeys: new Uint8Array(bytes), config: PGP_CONFIG });
  } catch (e) {
    throw new MkimgError('signature', `cannot read the secret key ${path}: ${(e as Error).message}`, {
      hint: 'give --key an OpenPGP v4 secret key (armored or binary)',
    });
  }
  if (keys.length !== 1) {
    throw new MkimgError('usage', `${path} holds ${keys.length} secret keys; mkimg sign needs exactly one`, {
      hint: 'export just the key you sign with',
    });
  }
  let key = keys[0];
  if (key.keyPacket.version !== 4) {
    throw new MkimgError(
      'signature',
      `the secret key in ${path} is an OpenPGP v${key.keyPacket.version} key; mkimg signs with v4 keys`,
      {
        hint: 'v4 keys verify with every current tool (gpg 2.2, sqv); make one with mkimg key generate',
      },
    );
  }
  if (!key.isDecrypted()) {
    if (passphrase === undefined) {
      throw new MkimgError('usage', `the secret key in ${path} is protected by a passphrase`, {
        hint: 'give --passphrase-file FILE (the first line is the passphrase)',
      });
    }
    try {
      key = await pgp.decryptKey({ privateKey: key, passphrase, config: PGP_CONFIG });
    } catch (e) {
      throw new MkimgError('signature', `cannot unlock the secret key in ${path}: ${(e as Error).message}`, {
        hint: 'check the passphrase file',
      });
    }
  }
  return key;
}

/** The reason mkimg refuses a key for signing or verifying, or undefined if it is acceptable. */
export function keyPolicyProblem(keyPacket: {
  getAlgorithmInfo(): openpgp.AlgorithmInfo;
  version: number;
}): string | undefined {
  const info = keyPacket.getAlgorithmInfo();
  const algo = info.algorithm as string;
  if (keyPacket.version !== 4 && keyPacket.version !== 6) return `it is an OpenPGP v${keyPacket.version} key`;
  if (algo === 'rsaSign' || algo === 'rsaEncryptSign') {
    if ((info.bits ?? 0) < MIN_RSA_BITS)
      return `it is RSA-${info.bits}; mkimg needs RSA of at least ${MIN_RSA_BITS} bits`;
    return undefined;
  }
  if (algo === 'eddsaLegacy' || algo === 'ed25519' || algo === 'ed448') return undefined;
  if (algo === 'ecdsa' && ['nistP256', 'nistP384', 'nistP521'].includes(String(info.curve))) return undefined;
  return `its algorithm ${algo}${info.curve ? ` (${info.curve})` : ''} is not accepted (use Ed25519 or RSA >= ${MIN_RSA_BITS})`;
}

export function fpr(hex: string): string {
  return hex.toUpperCase();
}

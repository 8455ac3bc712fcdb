/**
 * Verifying a manifest's detached OpenPGP signature against a keyring of
 * trusted keys, with mkimg's policy:
 * - a detached signature over the exact bytes, binary mode (type 0x00);
 *   clearsigned messages, inline-signed messages and text-mode (0x01)
 *   signatures are refused, since a text signature would bless manifests whose
 *   line endings differ;
 * - signature packet v4 (or v6, RFC 9580); v3 and v5 (LibrePGP) are refused;
 * - hash SHA-256 or stronger (SHA-1, MD5, RIPEMD-160, SHA-224 are refused);
 * - made by a key in the keyring that was valid when it signed: not expired
 *   at the signature's creation time, not revoked (a hard revocation, or a
 *   soft one dated before the signature), key policy of keys.ts.
 */
import { dirname, join, resolve } from 'node:path';
import { existsSync } from 'node:fs';
import type * as openpgp from 'openpgp';
import { MkimgError } from '../util/errors.js';
import { openpgp as loadOpenpgp } from '../util/openpgp.js';
import { ACCEPTED_HASHES, HASH_NAMES, SIG_TYPE_NAMES, signatureInfo, splitPackets } from './packets.js';
import { PGP_CONFIG, fpr, isArmored, keyPolicyProblem, readFileOr, readKeyring } from './keys.js';

export interface SignatureCheck {
  /** Fingerprint of the signer's primary key (uppercase hex). */
  fingerprint: string;
  /** Fingerprint of the (sub)key that made the signature. */
  signingKeyFingerprint: string;
  /** The signer's user IDs, as the keyring has them. */
  userIDs: string[];
  created: string;
  hash: string;
}

const SIG_HINT =
  "sign the manifest with mkimg sign (or gpg --detach-sign --armor, sq sign --signature-file) and verify with the signer's public key in --keyring";

function sigError(message: string, hint = SIG_HINT, details?: Record<string, unknown>): never {
  throw new MkimgError('signature', message, { hint, details });
}

/** Decode an ASCII-armored block of the given type (RFC 9580 §6.2), ignoring armor headers and the CRC line. */
function dearmor(text: string, file: string): Uint8Array {
  const lines = text.replace(/\r/g, '').split('\n');
  const begin = lines.findIndex((l) => l.startsWith('-----BEGIN PGP '));
  const end = lines.findIndex((l, i) => i > begin && l.startsWith('-----END PGP '));
  if (begin < 0 || end < 0) sigError(`${file}: the ASCII armor has no END line (truncated?)`);
  let i = begin + 1;
  // armor headers run to the first blank line, if there are any
  const hasHeaders = lines.slice(begin + 1, end).some((l) => l.trim() === '') && /^[A-Za-z-]+: /.test(lines[i] ?? '');
  if (hasHeaders) {
    while (i < end && lines[i].trim() !== '') i++;
  }
  let b64 = '';
  for (; i < end; i++) {
    const l = lines[i].trim();
    if (l === '' || (l.startsWith('=') && l.length === 5)) continue;
    b64 += l;
  }
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) sigError(`${file}: the ASCII armor is not valid base64`);
  return new Uint8Array(Buffer.from(b64, 'base64'));
}

/** Structural checks on the signature file; returns the binary signature packets. */
export function parseDetachedSignature(
  sigBytes: Uint8Array,
  file: string,
): { binary: Uint8Array; sigs: ReturnType<typeof signatureInfo>[] } {
  let binary: Uint8Array;
  if (isArmored(sigBytes)) {
    const text = Buffer.from(sigBytes).toString('utf8');
    const first = /-----BEGIN PGP ([A-Z ,/0-9]+)-----/.exec(text)![1];
    if (first === 'SIGNED MESSAGE') {
      sigError(
        `${file} is a clearsigned message, not a detached signature`,
        'clearsigning alters line endings and trailing spaces; make a detached signature: mkimg sign manifest.yaml, or gpg --detach-sign --armor manifest.yaml',
      );
    }
    if (first === 'MESSAGE') {
      sigError(
        `${file} is an OpenPGP message (inline-signed or encrypted), not a detached signature`,
        'make a detached signature: mkimg sign manifest.yaml, or gpg --detach-sign --armor manifest.yaml',
      );
    }
    if (first !== 'SIGNATURE') sigError(`${file} holds a PGP ${first.toLowerCase()}, not a detached signature`);
    const blocks = text.match(/-----BEGIN PGP /g)!.length;
    if (blocks > 1) sigError(`${file} holds ${blocks} armored blocks; a signature file holds one`);
    binary = dearmor(text, file);
  } else {
    binary = sigBytes;
  }
  if (binary.length === 0) sigError(`${file} is empty`);
  const packets = splitPackets(binary, file);
  const sigs = [];
  for (const p of packets) {
    if (p.tag === 10) continue; // marker packet: ignored by definition
    if (p.tag === 4 || p.tag === 11 || p.tag === 8) {
      sigError(
        `${file} is a signed message (inline signature), not a detached signature`,
        'make a detached signature: mkimg sign manifest.yaml, or gpg --detach-sign --armor manifest.yaml',
      );
    }
    if (p.tag !== 2)
      sigError(
        `${file} holds an OpenPGP packet of type ${p.tag} at byte ${p.offset}; a detached signature holds only signature packets`,
      );
    const info = signatureInfo(p);
    if (info.version === 5) {
      sigError(
        `${file} is a version 5 (LibrePGP) signature, which mkimg does not accept`,
        'sign with an OpenPGP v4 key (gpg 2.2, sq, mkimg sign); LibrePGP v5 signatures are not part of the OpenPGP standard (RFC 9580)',
      );
    }
    if (info.version === 3)
      sigError(
        `${file} is a version 3 signature (obsolete), which mkimg does not accept`,
        'sign with an OpenPGP v4 key',
      );
    if (info.version !== 4 && info.version !== 6)
      sigError(`${file} is a version ${info.version} signature, which mkimg does not know`);
    if (info.sigType === 0x01) {
      sigError(
        `${file} is a text-mode signature (type 0x01); mkimg requires a binary signature (type 0x00) over the exact manifest bytes`,
        'sign without --textmode/-t: gpg --detach-sign --armor manifest.yaml, or mkimg sign manifest.yaml',
      );
    }
    if (info.sigType !== 0x00) {
      sigError(
        `${file} is a ${SIG_TYPE_NAMES[info.sigType] ?? `type 0x${info.sigType.toString(16)}`} signature, not a signature over a document (type 0x00)`,
      );
    }
    if (!ACCEPTED_HASHES.has(info.hashAlgo)) {
      const name = HASH_NAMES[info.hashAlgo] ?? `hash algorithm ${info.hashAlgo}`;
      sigError(
        `${file} uses ${name}, which mkimg does not accept; it needs SHA-256 or stronger`,
        'sign again with a strong digest: gpg --digest-algo SHA512 --detach-sign --armor, or mkimg sign',
      );
    }
    sigs.push(info);
  }
  if (sigs.length === 0) sigError(`${file} holds no signature`);
  return { binary, sigs };
}

function keyIdOf(sig: openpgp.SignaturePacket): string {
  if (sig.issuerFingerprint) return fpr(Buffer.from(sig.issuerFingerprint).toString('hex'));
  return fpr(sig.issuerKeyID.toHex());
}

/**
 * Verify `sigBytes` (contents of `sigFile`) over `data` against `keys`. Throws
 * MkimgError('signature') with the reason; returns the signer on success.
 */
export async function verifyDetachedSignature(
  data: Uint8Array,
  sigBytes: Uint8Array,
  sigFile: string,
  keys: openpgp.PublicKey[],
  keyringFile: string,
  now: Date = new Date(),
): Promise<SignatureCheck> {
  const { binary } = parseDetachedSignature(sigBytes, sigFile);
  const pgp = await loadOpenpgp();
  let signature: openpgp.Signature;
  try {
    signature = await pgp.readSignature({ binarySignature: binary, config: PGP_CONFIG });
  } catch (e) {
    sigError(`${sigFile} cannot be parsed: ${(e as Error).message}`);
  }
  const packets = [...signature.packets] as openpgp.SignaturePacket[];
  let results: Awaited<ReturnType<typeof pgp.verify>>['signatures'];
  try {
    const res = await pgp.verify({
      message: await pgp.createMessage({ binary: data }),
      signature,
      verificationKeys: keys,
      date: now,
      format: 'binary',
      config: PGP_CONFIG,
    });
    results = res.signatures;
  } catch (e) {
    sigError(`${sigFile} cannot be checked: ${(e as Error).message}`);
  }
  const problems: string[] = [];
  for (let i = 0; i < packets.length; i++) {
    const sp = packets[i];
    const issuer = keyIdOf(sp);
    const key = keys.find((k) => k.getKeys(sp.issuerKeyID).length > 0);
    if (!key) {
      problems.push(`it was made by key ${issuer}, which is not in the keyring ${keyringFile}`);
      continue;
    }
    const signer = key.getKeys(sp.issuerKeyID)[0];
    const policy = keyPolicyProblem(signer.keyPacket);
    if (policy) {
      problems.push(`the signing key ${fpr(signer.getFingerprint())} is refused: ${policy}`);
      continue;
    }
    const created = sp.created ?? now;
    let err: Error | undefined;
    try {
      await results[i].verified;
    } catch (e) {
      err = e as Error;
    }
    if (!err) {
      return {
        fingerprint: fpr(key.getFingerprint()),
        signingKeyFingerprint: fpr(signer.getFingerprint()),
        userIDs: key.getUserIDs(),
        created: created.toISOString(),
        hash: HASH_NAMES[sp.hashAlgorithm ?? 0] ?? String(sp.hashAlgorithm),
      };
    }
    problems.push(await diagnose(err, key, signer, created, now));
  }
  const onlyUnknown = problems.every((p) => p.includes('is not in the keyring'));
  sigError(
    `the signature ${sigFile} is not good: ${problems.join('; ')}`,
    onlyUnknown
      ? `add the signer's public key to ${keyringFile} only if you trust it (gpg --export --armor KEYID >> ${keyringFile})`
      : SIG_HINT,
  );
}

async function diagnose(
  err: Error,
  key: openpgp.PublicKey,
  signer: openpgp.PublicKey | openpgp.Subkey,
  created: Date,
  now: Date,
): Promise<string> {
  const who = `key ${fpr(key.getFingerprint())}${signer !== key ? ` (subkey ${fpr(signer.getFingerprint())})` : ''}`;
  const msg = err.message;
  if (
    /digest did not match|verification failed|invalid signature|Signature.*invalid/i.test(msg) &&
    !/expired|revoked/i.test(msg)
  ) {
    return `BAD signature by ${who}: the manifest's bytes are not the bytes that were signed (was the manifest changed after signing?)`;
  }
  if (created.getTime() > now.getTime() + 60_000)
    return `the signature claims to be made in the future (${created.toISOString()})`;
  // Revocation: openpgp.js honours hard revocations at any date, soft ones from their date.
  try {
    if (await key.isRevoked(undefined, undefined, created, (await loadOpenpgp()).config)) {
      const rev = key.revocationSignatures[0];
      const reason = rev?.reasonForRevocationString ? `: "${rev.reasonForRevocationString}"` : '';
      return `${who} has been revoked${reason}`;
    }
  } catch {
    /* fall through */
  }
  if (/revoked/i.test(msg)) return `${who} has been revoked (${msg})`;
  let exp: Date | number | null = null;
  try {
    exp = signer === key ? await key.getExpirationTime() : await (signer as openpgp.Subkey).getExpirationTime(created);
  } catch {
    /* fall through */
  }
  if (/expired/i.test(msg) || (exp instanceof Date && exp.getTime() <= created.getTime())) {
    const when = exp instanceof Date ? ` on ${exp.toISOString()}` : '';
    return `${who} had expired${when}, before the signature was made (${created.toISOString()})`;
  }
  if (/newer than the signature/i.test(msg))
    return `${who} was created after the signature's date (${created.toISOString()})`;
  return `${who} did not verify it: ${msg}`;
}

/** Where a manifest's signature is looked for when none is named: <manifest>.sig, then manifest.sig beside it. */
export function defaultSignaturePaths(manifestPath: string): string[] {
  const abs = resolve(manifestPath);
  return [abs + '.sig', join(dirname(abs), 'manifest.sig')];
}

/** The manifest a signature covers when none is named: the signature's name without .sig, else manifest.yaml beside it. */
export function defaultManifestPath(sigPath: string): string {
  const abs = resolve(sigPath);
  if (abs.endsWith('.sig') || abs.endsWith('.asc')) {
    const base = abs.slice(0, -4);
    if (existsSync(base)) return base;
  }
  return join(dirname(abs), 'manifest.yaml');
}

/**
 * For mkimg build --require-signature: the manifest at `manifestPath` must carry
 * a good signature by a key in `keyringPath`. Call before fetching anything.
 */
export async function checkManifestSignature(
  manifestPath: string,
  sigPath: string | undefined,
  keyringPath: string,
  manifestBytes?: Buffer,
): Promise<{ fingerprint: string }> {
  // With manifestBytes, the signature is checked over exactly the bytes the caller will parse.
  const manifest = manifestBytes ?? readFileOr(manifestPath, 'usage', 'manifest', 'give the path of a manifest.yaml');
  let sig = sigPath;
  if (sig === undefined) {
    const tried = defaultSignaturePaths(manifestPath);
    sig = tried.find((p) => existsSync(p));
    if (!sig) {
      sigError(
        `${manifestPath} has no signature (looked for ${tried.join(' and ')})`,
        `sign it (mkimg sign ${manifestPath} --key secret.asc) or give the signature's path`,
      );
    }
  }
  const sigBytes = readFileOr(
    sig,
    'signature',
    'signature',
    `sign the manifest: mkimg sign ${manifestPath} --key secret.asc`,
  );
  const keys = await readKeyring(keyringPath);
  const res = await verifyDetachedSignature(new Uint8Array(manifest), new Uint8Array(sigBytes), sig, keys, keyringPath);
  return { fingerprint: res.fingerprint };
}

/**
 * Release / InRelease: verify the cleartext OpenPGP signature of InRelease
 * against a source's keyring (openpgp.js), then parse the verified text:
 * Suite, Codename, Date, Valid-Until and the SHA256 table that pins every index.
 */
import { readFile } from 'node:fs/promises';
import type * as openpgp from 'openpgp';
import { parseDeb822 } from './control.js';
import { MkimgError } from '../util/errors.js';
import { openpgp as loadOpenpgp } from '../util/openpgp.js';

export interface ReleaseFileEntry {
  sha256: string;
  size: number;
}

export interface Release {
  suite?: string;
  codename?: string;
  date?: Date;
  validUntil?: Date;
  architectures: string[];
  components: string[];
  notAutomatic: boolean;
  butAutomaticUpgrades: boolean;
  acquireByHash: boolean;
  /** path below dists/SUITE/ → sha256 + size */
  sha256: Map<string, ReleaseFileEntry>;
  /** Fingerprints (hex, upper case) of the keys whose signatures verified; empty when unsigned. */
  signedBy: string[];
}

export function parseRelease(text: string): Release {
  const stanzas = parseDeb822(text);
  const s = stanzas[0];
  if (!s) throw new SyntaxError('Release file is empty');
  const date = (v: string | undefined) => {
    if (!v) return undefined;
    const d = new Date(v);
    return Number.isNaN(d.getTime()) ? undefined : d;
  };
  const table = new Map<string, ReleaseFileEntry>();
  for (const line of (s.get('SHA256') ?? '').split('\n')) {
    const parts = line.trim().split(/\s+/);
    if (parts.length !== 3) continue;
    const [hex, size, path] = parts as [string, string, string];
    if (!/^[0-9a-f]{64}$/.test(hex)) continue;
    table.set(path, { sha256: hex, size: Number(size) });
  }
  const yes = (v: string | undefined) => (v ?? '').trim().toLowerCase() === 'yes';
  return {
    suite: s.get('Suite'),
    codename: s.get('Codename'),
    date: date(s.get('Date')),
    validUntil: date(s.get('Valid-Until')),
    architectures: (s.get('Architectures') ?? '').split(/\s+/).filter(Boolean),
    components: (s.get('Components') ?? '').split(/\s+/).filter(Boolean),
    notAutomatic: yes(s.get('NotAutomatic')),
    butAutomaticUpgrades: yes(s.get('ButAutomaticUpgrades')),
    acquireByHash: yes(s.get('Acquire-By-Hash')),
    sha256: table,
    signedBy: [],
  };
}

/** Read an armored (one or more blocks) or binary OpenPGP keyring. */
export async function readKeyring(path: string): Promise<openpgp.PublicKey[]> {
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (e) {
    throw new MkimgError('manifest', `cannot read keyring ${path}: ${(e as Error).message}`, {
      hint: 'check the keyring: path of the source',
    });
  }
  const pgp = await loadOpenpgp();
  try {
    const text = data.toString('latin1');
    if (text.includes('-----BEGIN PGP PUBLIC KEY BLOCK-----')) {
      const blocks =
        text.match(/-----BEGIN PGP PUBLIC KEY BLOCK-----[\s\S]*?-----END PGP PUBLIC KEY BLOCK-----/g) ?? [];
      const keys: openpgp.PublicKey[] = [];
      for (const b of blocks) keys.push(...(await pgp.readKeys({ armoredKeys: b })));
      return keys;
    }
    return await pgp.readKeys({ binaryKeys: new Uint8Array(data) });
  } catch (e) {
    throw new MkimgError('manifest', `keyring ${path} holds no readable OpenPGP public keys: ${(e as Error).message}`, {
      hint: 'use an armored (.asc) or binary (.gpg) export of the repository signing keys',
    });
  }
}

export interface VerifyContext {
  suite: string;
  url: string;
  keyringPath?: string;
  now?: Date;
}

/**
 * Verify InRelease and return the parsed, verified Release. At least one
 * signature must verify with a key of the keyring that is neither expired nor
 * revoked; only the signed text is parsed.
 */
export async function verifyInRelease(
  inRelease: string,
  keys: openpgp.PublicKey[],
  ctx: VerifyContext,
): Promise<Release> {
  const where = `InRelease of suite "${ctx.suite}" (${ctx.url})`;
  const now = ctx.now ?? new Date();
  const pgp = await loadOpenpgp();
  let message: openpgp.CleartextMessage;
  try {
    message = await pgp.readCleartextMessage({ cleartextMessage: inRelease });
  } catch (e) {
    throw new MkimgError('repository', `${where} is not signed: ${(e as Error).message}`, {
      hint: 'the mirror must serve a clearsigned InRelease; only a source with allowUnsigned: true may use an unsigned Release',
      details: { suite: ctx.suite, url: ctx.url },
    });
  }
  const result = await pgp.verify({ message, verificationKeys: keys, date: now, expectSigned: false });
  const good: string[] = [];
  const problems: string[] = [];
  for (const sig of result.signatures) {
    const keyId = sig.keyID.toHex().toUpperCase();
    try {
      await sig.verified;
    } catch (e) {
      problems.push(`signature by key ${keyId}: ${(e as Error).message}`);
      continue;
    }
    // Belt and braces: the key (and subkey) that made it must be valid now.
    const key = keys.find((k) => k.getKeys(sig.keyID).length > 0);
    if (!key) {
      problems.push(`signature by key ${keyId}: key not in the keyring`);
      continue;
    }
    try {
      // throws when the primary key is revoked or expired, or the signing subkey is
      await key.verifyPrimaryKey(now);
      await key.getSigningKey(sig.keyID, now);
    } catch (e) {
      problems.push(`key ${key.getFingerprint().toUpperCase()}: ${(e as Error).message}`);
      continue;
    }
    good.push(key.getFingerprint().toUpperCase());
  }
  if (good.length === 0) {
    const detail = result.signatures.length === 0 ? 'it carries no signature' : problems.join('; ');
    throw new MkimgError(
      'repository',
      `${where}: no valid signature from the keyring ${ctx.keyringPath ?? ''}: ${detail}`.replace(
        'keyring :',
        'keyring:',
      ),
      {
        hint: "check that the source's keyring: holds the key that signs this repository, and that the mirror is genuine",
        details: { suite: ctx.suite, url: ctx.url },
      },
    );
  }
  const text = typeof result.data === 'string' ? result.data : Buffer.from(result.data as Uint8Array).toString('utf8');
  const rel = parseReleaseChecked(text, ctx, now);
  rel.signedBy = [...new Set(good)].sort();
  return rel;
}

/** Parse and check suite name and Valid-Until. */
export function parseReleaseChecked(
  text: string,
  ctx: VerifyContext & { ignoreValidUntil?: boolean },
  now = new Date(),
): Release {
  let rel: Release;
  try {
    rel = parseRelease(text);
  } catch (e) {
    throw new MkimgError(
      'repository',
      `Release of suite "${ctx.suite}" (${ctx.url}) cannot be parsed: ${(e as Error).message}`,
      { details: { suite: ctx.suite, url: ctx.url } },
    );
  }
  if (rel.suite !== ctx.suite && rel.codename !== ctx.suite) {
    throw new MkimgError(
      'repository',
      `Release at ${ctx.url} is for suite "${rel.suite ?? '?'}" / codename "${rel.codename ?? '?'}", not "${ctx.suite}"`,
      {
        hint: 'the mirror serves another suite under this name; check the mirror URL',
        details: { suite: ctx.suite, url: ctx.url },
      },
    );
  }
  if (
    rel.validUntil &&
    rel.validUntil.getTime() < now.getTime() &&
    !ctx.ignoreValidUntil &&
    !process.env.MKIMG_IGNORE_VALID_UNTIL
  ) {
    throw new MkimgError(
      'repository',
      `Release of suite "${ctx.suite}" (${ctx.url}) expired at ${rel.validUntil.toISOString()} (Valid-Until)`,
      {
        hint: 'the mirror is stale; use a current mirror, or set MKIMG_IGNORE_VALID_UNTIL=1 when locking against a snapshot archive on purpose',
        details: { suite: ctx.suite, url: ctx.url },
      },
    );
  }
  return rel;
}

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import { Gpg, TempDir, run } from '../helpers/pgp.js';
import { generateKeyFiles, signManifest } from '../../src/sign/sign.js';
import { readKeyring } from '../../src/sign/keys.js';
import { checkManifestSignature, verifyDetachedSignature } from '../../src/sign/verify-signature.js';
import { rejection } from '../helpers/errors.js';

const MANIFEST = `apiVersion: mkimg/v1
name: hello
tag: "1.0"
architecture: amd64
sourceDateEpoch: 1700000000
packages:
  - name: base-files
`;

let dir: TempDir;
let gpg: Gpg;
let manifest: string;

beforeAll(() => {
  dir = new TempDir('mkimg-sign-');
  gpg = new Gpg(dir);
  manifest = dir.file('manifest.yaml', MANIFEST);
});
afterAll(() => {
  gpg?.cleanup();
  dir?.cleanup();
});

async function verifyWith(sigPath: string, keyringPath: string, manifestPath = manifest) {
  const keys = await readKeyring(keyringPath);
  return verifyDetachedSignature(readFileSync(manifestPath), readFileSync(sigPath), sigPath, keys, keyringPath);
}

/** Re-armor binary signature packets. */
function armorSig(bin: Uint8Array): string {
  return openpgp.armor(openpgp.enums.armor.signature, bin);
}

describe('mkimg key generate + mkimg sign', () => {
  let gen: Awaited<ReturnType<typeof generateKeyFiles>>;
  beforeAll(async () => {
    gen = await generateKeyFiles({ name: 'Release Team', email: 'release@example.org', prefix: join(dir.path, 'rel') });
  });

  it('writes an Ed25519 v4 pair, secret 0600, and never overwrites', async () => {
    expect(gen.secretPath).toBe(join(dir.path, 'rel.secret.asc'));
    expect(statSync(gen.secretPath).mode & 0o777).toBe(0o600);
    const key = await openpgp.readKey({ armoredKey: readFileSync(gen.publicPath, 'utf8') });
    expect(key.keyPacket.version).toBe(4);
    expect(key.getAlgorithmInfo().algorithm).toBe('eddsaLegacy');
    expect(key.getFingerprint().toUpperCase()).toBe(gen.fingerprint);
    const before = readFileSync(gen.secretPath, 'utf8');
    const e = await rejection(generateKeyFiles({ name: 'X', email: 'x@example.org', prefix: join(dir.path, 'rel') }));
    expect(e.kind).toBe('usage');
    expect(e.message).toMatch(/never overwrites/);
    expect(readFileSync(gen.secretPath, 'utf8')).toBe(before);
  });

  it('signs: armored, detached, binary mode, SHA-512; gpg --verify and sqv accept it', async () => {
    const res = await signManifest({ manifestPath: manifest, keyPath: gen.secretPath });
    expect(res.output).toBe(manifest + '.sig');
    const sig = readFileSync(res.output, 'utf8');
    expect(sig).toMatch(/^-----BEGIN PGP SIGNATURE-----/);
    const packets = gpg.ok(['--list-packets', res.output]);
    expect(packets).toMatch(/sigclass 0x00/);
    expect(packets).toMatch(/digest algo 10/);

    gpg.ok(['--import', gen.publicPath]);
    const v = gpg.run(['--status-fd', '1', '--verify', res.output, manifest]);
    expect(v.status).toBe(0);
    expect(v.stdout).toContain(`VALIDSIG ${gen.fingerprint}`);

    const s = run('sqv', ['--keyring', gen.publicPath, res.output, manifest]);
    expect(s.stderr + s.stdout).not.toMatch(/error/i);
    expect(s.status).toBe(0);
    expect(s.stdout.trim()).toBe(gen.fingerprint);

    // and sqv refuses it for other bytes
    const other = dir.file('other.yaml', MANIFEST + '# changed\n');
    expect(run('sqv', ['--keyring', gen.publicPath, res.output, other]).status).not.toBe(0);

    const ok = await verifyWith(res.output, gen.publicPath);
    expect(ok.fingerprint).toBe(gen.fingerprint);
  });

  it('signs with a passphrase-protected key given --passphrase-file', async () => {
    const g2 = await generateKeyFiles({
      name: 'P',
      email: 'p@example.org',
      prefix: join(dir.path, 'prot'),
      passphrase: 'correct horse',
    });
    const e = await rejection(
      signManifest({ manifestPath: manifest, keyPath: g2.secretPath, output: join(dir.path, 'p.sig') }),
    );
    expect(e.kind).toBe('usage');
    expect(e.hint).toMatch(/--passphrase-file/);
    const bad = await rejection(
      signManifest({
        manifestPath: manifest,
        keyPath: g2.secretPath,
        passphrase: 'wrong',
        output: join(dir.path, 'p.sig'),
      }),
    );
    expect(bad.kind).toBe('signature');
    const res = await signManifest({
      manifestPath: manifest,
      keyPath: g2.secretPath,
      passphrase: 'correct horse',
      output: join(dir.path, 'p.sig'),
    });
    expect((await verifyWith(res.output, g2.publicPath)).fingerprint).toBe(g2.fingerprint);
  });
});

describe('mkimg sign with keys from other tools', () => {
  it('a GnuPG RSA-3072 secret key: gpg --verify accepts the result', async () => {
    const f = gpg.genKey('Signer <signer@example.org>', 'rsa3072');
    const secret = join(dir.path, 'gpg-rsa.secret.asc');
    gpg.ok(['--armor', '--export-secret-keys', '--output', secret, f]);
    const res = await signManifest({
      manifestPath: manifest,
      keyPath: secret,
      output: join(dir.path, 'gpg-rsa-mkimg.sig'),
    });
    expect(res.fingerprint).toBe(f);
    const v = gpg.run(['--status-fd', '1', '--verify', res.output, manifest]);
    expect(v.status, v.stderr).toBe(0);
    expect(v.stdout).toContain(`VALIDSIG ${f}`);
  });

  it('a Sequoia key (binary, signing subkey): the subkey signs, sqv accepts the result', async () => {
    const key = join(dir.path, 'sq-signer.key.pgp');
    const cert = join(dir.path, 'sq-signer.cert.asc');
    expect(run('sq', ['key', 'generate', '--userid', '<signer@example.org>', '--export', key]).status).toBe(0);
    expect(run('sq', ['key', 'extract-cert', '--output', cert, key]).status).toBe(0);
    const res = await signManifest({ manifestPath: manifest, keyPath: key, output: join(dir.path, 'sq-mkimg.sig') });
    expect(res.signingKeyFingerprint).not.toBe(res.fingerprint);
    const s = run('sqv', ['--keyring', cert, res.output, manifest]);
    expect(s.status, s.stderr).toBe(0);
    expect(s.stdout.trim()).toBe(res.fingerprint);
    expect((await verifyWith(res.output, cert)).signingKeyFingerprint).toBe(res.signingKeyFingerprint);
  });

  it('refuses a weak key for signing (RSA-2048)', async () => {
    const f = gpg.genKey('Weak Signer <weaksigner@example.org>', 'rsa2048');
    const secret = join(dir.path, 'weak.secret.asc');
    gpg.ok(['--armor', '--export-secret-keys', '--output', secret, f]);
    const e = await rejection(
      signManifest({ manifestPath: manifest, keyPath: secret, output: join(dir.path, 'weak-mkimg.sig') }),
    );
    expect(e.kind).toBe('signature');
    expect(e.message).toMatch(/RSA-2048; mkimg needs RSA of at least 3072/);
  });
});

describe('signatures from GnuPG and Sequoia verify in mkimg', () => {
  it('gpg Ed25519 --detach-sign --armor', async () => {
    const f = gpg.genKey('Ed <ed@example.org>', 'ed25519');
    const sig = join(dir.path, 'ed.sig');
    gpg.ok(['--local-user', f, '--detach-sign', '--armor', '--output', sig, manifest]);
    const res = await verifyWith(sig, gpg.exportPublic(f, join(dir.path, 'ed.pub.asc')));
    expect(res.fingerprint).toBe(f);
  });

  it('gpg RSA-3072, binary (unarmored) signature too; RSA-2048 is refused', async () => {
    const f = gpg.genKey('Rsa <rsa@example.org>', 'rsa3072');
    const pub = gpg.exportPublic(f, join(dir.path, 'rsa.pub.asc'));
    const sig = join(dir.path, 'rsa.sig');
    gpg.ok(['--local-user', f, '--detach-sign', '--armor', '--output', sig, manifest]);
    expect((await verifyWith(sig, pub)).fingerprint).toBe(f);
    const bin = join(dir.path, 'rsa.sig.bin');
    gpg.ok(['--local-user', f, '--detach-sign', '--output', bin, manifest]);
    expect((await verifyWith(bin, pub)).fingerprint).toBe(f);

    const weak = gpg.genKey('Weak <weak@example.org>', 'rsa2048');
    const wsig = join(dir.path, 'weak.sig');
    gpg.ok(['--local-user', weak, '--detach-sign', '--armor', '--output', wsig, manifest]);
    const e = await rejection(verifyWith(wsig, gpg.exportPublic(weak, join(dir.path, 'weak.pub.asc'))));
    expect(e.kind).toBe('signature');
    expect(e.message).toMatch(/RSA-2048/);
  });

  it('sq sign --detached with a key whose signing key is a subkey', async () => {
    const key = join(dir.path, 'sq.key.pgp');
    const cert = join(dir.path, 'sq.cert.asc');
    expect(run('sq', ['key', 'generate', '--userid', '<sq@example.org>', '--export', key]).status).toBe(0);
    expect(run('sq', ['key', 'extract-cert', '--output', cert, key]).status).toBe(0);
    const sig = join(dir.path, 'sq.sig');
    const r = run('sq', ['sign', '--detached', '--signer-key', key, '--output', sig, manifest]);
    expect(r.status, r.stderr).toBe(0);
    const res = await verifyWith(sig, cert);
    const pk = await openpgp.readKey({ armoredKey: readFileSync(cert, 'utf8') });
    expect(res.fingerprint).toBe(pk.getFingerprint().toUpperCase());
    expect(res.signingKeyFingerprint).not.toBe(res.fingerprint); // made by the signing subkey
  });
});

describe('rejections', () => {
  let f: string;
  let pub: string;
  let sig: string;
  beforeAll(() => {
    f = gpg.genKey('Rej <rej@example.org>', 'rsa3072');
    pub = gpg.exportPublic(f, join(dir.path, 'rej.pub.asc'));
    sig = join(dir.path, 'rej.sig');
    gpg.ok(['--local-user', f, '--detach-sign', '--armor', '--output', sig, manifest]);
  });

  it('one flipped byte in the manifest', async () => {
    const b = Buffer.from(MANIFEST);
    b[20] ^= 0x01;
    const m = dir.file('flipped.yaml', b);
    const e = await rejection(verifyWith(sig, pub, m));
    expect(e.kind).toBe('signature');
    expect(e.message).toMatch(/BAD signature/);
  });

  it('a key not in the keyring', async () => {
    const other = gpg.genKey('Other <other@example.org>', 'ed25519');
    const e = await rejection(verifyWith(sig, gpg.exportPublic(other, join(dir.path, 'other.pub.asc'))));
    expect(e.kind).toBe('signature');
    expect(e.message).toContain(`key ${f}, which is not in the keyring`);
  });

  it('clearsigned', async () => {
    const cs = join(dir.path, 'clear.asc');
    gpg.ok(['--local-user', f, '--clearsign', '--output', cs, manifest]);
    const e = await rejection(verifyWith(cs, pub));
    expect(e.message).toMatch(/clearsigned/);
  });

  it('text mode (gpg --textmode)', async () => {
    const t = join(dir.path, 'text.sig');
    gpg.ok(['--local-user', f, '--textmode', '--detach-sign', '--armor', '--output', t, manifest]);
    const e = await rejection(verifyWith(t, pub));
    expect(e.message).toMatch(/text-mode signature \(type 0x01\)/);
  });

  it('SHA-1 (gpg --digest-algo SHA1)', async () => {
    const t = join(dir.path, 'sha1.sig');
    gpg.ok(['--local-user', f, '--digest-algo', 'SHA1', '--detach-sign', '--armor', '--output', t, manifest]);
    expect(gpg.ok(['--list-packets', t])).toMatch(/digest algo 2,/);
    const e = await rejection(verifyWith(t, pub));
    expect(e.message).toMatch(/uses SHA-1/);
  });

  it('an inline-signed message', async () => {
    const t = join(dir.path, 'inline.asc');
    gpg.ok(['--local-user', f, '--sign', '--armor', '--output', t, manifest]);
    const e = await rejection(verifyWith(t, pub));
    expect(e.message).toMatch(/not a detached signature/);
  });

  it('a v5 (LibrePGP) signature packet', async () => {
    // GnuPG 2.2 and openpgp.js v6 cannot make v5 signatures: craft the packet
    // (version octet 5, the v5 layout starts like v4's).
    const s = await openpgp.readSignature({ armoredSignature: readFileSync(sig, 'utf8') });
    const bin = Buffer.from(s.write() as Uint8Array);
    const hdrLen = bin[0] & 0x40 ? (bin[1] < 192 ? 2 : bin[1] < 224 ? 3 : 6) : 1 + [1, 2, 4][bin[0] & 3];
    expect(bin[hdrLen]).toBe(4);
    bin[hdrLen] = 5;
    const v5 = dir.file('v5.sig', armorSig(bin));
    const e = await rejection(verifyWith(v5, pub));
    expect(e.message).toMatch(/version 5 \(LibrePGP\)/);
  });

  it('an expired key (expired before it signed), while a signature from its valid time passes', async () => {
    const day = 86400_000;
    const born = new Date(Date.now() - 30 * day);
    const { privateKey } = await openpgp.generateKey({
      type: 'ecc',
      curve: 'ed25519Legacy',
      userIDs: [{ email: 'exp@example.org' }],
      date: born,
      format: 'object',
    });
    const sign = async (date: Date, key: openpgp.PrivateKey) =>
      openpgp.sign({
        message: await openpgp.createMessage({ binary: readFileSync(manifest) }),
        signingKeys: key,
        detached: true,
        date,
        format: 'armored',
      });
    const sigNow = dir.file('exp-now.sig', (await sign(new Date(), privateKey)) as string);
    const sigThen = dir.file('exp-then.sig', (await sign(new Date(born.getTime() + 3600_000), privateKey)) as string);
    // The same key material with self-signatures that let it expire one day after its birth.
    const { publicKey } = await openpgp.reformatKey({
      privateKey,
      userIDs: [{ email: 'exp@example.org' }],
      keyExpirationTime: 86400,
      date: born,
    });
    const ring = dir.file('exp.pub.asc', publicKey);
    const e = await rejection(verifyWith(sigNow, ring));
    expect(e.kind).toBe('signature');
    expect(e.message).toMatch(/had expired on .* before the signature was made/);
    expect((await verifyWith(sigThen, ring)).fingerprint).toBe(privateKey.getFingerprint().toUpperCase());
  });

  it('a revoked key (GnuPG revocation certificate imported)', async () => {
    const rf = gpg.genKey('Revoked <revoked@example.org>', 'ed25519');
    const rsig = join(dir.path, 'revoked.sig');
    gpg.ok(['--local-user', rf, '--detach-sign', '--armor', '--output', rsig, manifest]);
    const before = gpg.exportPublic(rf, join(dir.path, 'revoked-before.pub.asc'));
    expect((await verifyWith(rsig, before)).fingerprint).toBe(rf);
    // gpg writes a revocation certificate for every key; it is armed by removing the ':' guard.
    const cert = readFileSync(join(gpg.home, 'openpgp-revocs.d', `${rf}.rev`), 'utf8').replace(
      /^:-----BEGIN/m,
      '-----BEGIN',
    );
    gpg.ok(['--import'], cert);
    const after = gpg.exportPublic(rf, join(dir.path, 'revoked.pub.asc'));
    const e = await rejection(verifyWith(rsig, after));
    expect(e.kind).toBe('signature');
    expect(e.message).toMatch(/has been revoked/);
  });

  it('a soft revocation (superseded) after the signature keeps it good; a hard one does not', async () => {
    const { privateKey } = await openpgp.generateKey({
      type: 'ecc',
      curve: 'ed25519Legacy',
      userIDs: [{ email: 'soft@example.org' }],
      format: 'object',
      date: new Date(Date.now() - 3600_000),
    });
    const signed = dir.file(
      'soft.sig',
      (await openpgp.sign({
        message: await openpgp.createMessage({ binary: readFileSync(manifest) }),
        signingKeys: privateKey,
        detached: true,
        format: 'armored',
        date: new Date(Date.now() - 1800_000),
      })) as string,
    );
    const soft = await openpgp.revokeKey({
      key: privateKey,
      reasonForRevocation: { flag: openpgp.enums.reasonForRevocation.keySuperseded, string: 'rotated' },
      format: 'armored',
    });
    expect((await verifyWith(signed, dir.file('soft.pub.asc', soft.publicKey))).fingerprint).toBe(
      privateKey.getFingerprint().toUpperCase(),
    );
    const hard = await openpgp.revokeKey({
      key: privateKey,
      reasonForRevocation: { flag: openpgp.enums.reasonForRevocation.keyCompromised, string: 'leaked' },
      format: 'armored',
    });
    const e = await rejection(verifyWith(signed, dir.file('hard.pub.asc', hard.publicKey)));
    expect(e.message).toMatch(/has been revoked: "leaked"/);
  });

  it('checkManifestSignature finds <manifest>.sig and refuses a missing one', async () => {
    const m = dir.file('m2.yaml', MANIFEST);
    const e = await rejection(checkManifestSignature(m, undefined, pub));
    expect(e.kind).toBe('signature');
    expect(e.message).toMatch(/has no signature \(looked for .*m2\.yaml\.sig and .*manifest\.sig\)/);
    gpg.ok(['--local-user', f, '--detach-sign', '--armor', '--output', m + '.sig', m]);
    expect((await checkManifestSignature(m, undefined, pub)).fingerprint).toBe(f);
    const missing = await rejection(checkManifestSignature(join(dir.path, 'nope.yaml'), undefined, pub));
    expect(missing.kind).toBe('usage'); // a manifest named on the command line that is not there: exit 2 (SPEC §4)
    writeFileSync(m, MANIFEST + '\n');
    expect((await rejection(checkManifestSignature(m, undefined, pub))).message).toMatch(/BAD signature/);
  });
});

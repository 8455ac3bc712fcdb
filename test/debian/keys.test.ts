import { describe, it, expect } from 'vitest';
import { join, resolve } from 'node:path';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { readKeyring } from '../../src/debian/release.js';

const keyFile = (n: string) => resolve(__dirname, '../../keys', n);

describe('shipped Debian archive keys', () => {
  it.each([
    [
      'debian-archive-bookworm.asc',
      [
        '05AB90340C0C5E797F44A8C8254CF3B5AEC0A8F0',
        '4D64FEC119C2029067D6E791F8D2585B8783D481',
        'B8B80B5B623EAB6AD8775C45B7C5D7D6350947F8',
      ],
    ],
    [
      'debian-archive-trixie.asc',
      [
        '04B54C3CDCA79751B16BC6B5225629DF75B188BD',
        '41587F7DB8C774BCCF131416762F67A0B2C39DE4',
        '5E04A1E3223A19A20706E20F9904613D4CCE68C6',
      ],
    ],
  ])('%s holds exactly the documented keys, valid until after 2030', async (file, fprs) => {
    const keys = await readKeyring(keyFile(file));
    expect(keys.map((k) => k.getFingerprint().toUpperCase()).sort()).toEqual(fprs);
    for (const k of keys) {
      const exp = await k.getExpirationTime();
      expect(exp instanceof Date ? exp.getUTCFullYear() : Infinity).toBeGreaterThanOrEqual(2031);
      expect(await k.isRevoked()).toBe(false);
    }
    // the fingerprints are the ones the spec lists
    const spec = readFileSync(resolve(__dirname, '../../SPEC.md'), 'utf8');
    for (const f of fprs) expect(spec).toContain(f);
  });

  it('reads a binary keyring too, and names a file that holds no keys', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mkimg-keys-'));
    try {
      const bin = join(dir, 'bookworm.gpg');
      execFileSync('gpg', ['--batch', '--yes', '--output', bin, '--dearmor', keyFile('debian-archive-bookworm.asc')], {
        stdio: 'ignore',
      });
      expect(readFileSync(bin)[0]! & 0x80).toBe(0x80); // an OpenPGP packet, not armor
      expect((await readKeyring(bin)).map((k) => k.getFingerprint().toUpperCase()).sort()).toEqual([
        '05AB90340C0C5E797F44A8C8254CF3B5AEC0A8F0',
        '4D64FEC119C2029067D6E791F8D2585B8783D481',
        'B8B80B5B623EAB6AD8775C45B7C5D7D6350947F8',
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    await expect(readKeyring(resolve(__dirname, 'keys.test.ts'))).rejects.toMatchObject({
      kind: 'manifest',
      message: expect.stringContaining('holds no readable OpenPGP public keys'),
    });
  });
});

/**
 * `mkimg verify` for every layering strategy and compression: signature,
 * integrity, binding and a byte-identical rebuild pass for the image as
 * built; a flipped byte in its last layer stops it at integrity (exit 7);
 * the signature of another manifest stops it at the binding (exit 8).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkImageIntegrity } from '../../src/verify/integrity.js';
import { bodyOffset, flipByte } from '../helpers/oci-fixture.js';
import { TempDir } from '../helpers/pgp.js';
import { writeSampleProject } from '../helpers/sample-project.js';
import { cli, expectCleanFailure, releaseKey } from '../helpers/sign-cli.js';

const CASES = [
  ['origin', 'gzip'],
  ['origin', 'zstd'],
  ['per-package', 'gzip'],
  ['per-package', 'zstd'],
  ['single', 'gzip'],
  ['single', 'none'],
] as const;

let dir: TempDir;
let key: ReturnType<typeof releaseKey>;
let otherSig: string;

beforeAll(() => {
  dir = new TempDir('mkimg-verify-strategies-');
  key = releaseKey(join(dir.path, 'rel'));
  const other = writeSampleProject(join(dir.path, 'other'), { extraYaml: 'compression: zstd\n' });
  otherSig = key.sign(other);
}, 120_000);
afterAll(() => dir?.cleanup());

describe('verify, every strategy and compression', () => {
  for (const [strategy, compression] of CASES) {
    it(`${strategy}, ${compression}: passes whole, exit 7 for a flipped layer byte, exit 8 for another manifest's signature`, async () => {
      const proj = join(dir.path, `${strategy}-${compression}`);
      const manifest = writeSampleProject(proj, {
        extraYaml: `layering: {strategy: ${strategy}${strategy === 'per-package' ? ', budget: 3' : ''}}\ncompression: ${compression}\n`,
      });
      const sig = key.sign(manifest);
      const image = join(proj, 'image.tar');
      expect(cli(['build', manifest, '-o', image]).code).toBe(0);

      const ok = cli([
        'verify',
        image,
        sig,
        '--keyring',
        key.publicPath,
        '--cache-dir',
        join(dir.path, 'fresh'),
        '--json',
      ]);
      expect(ok.code, ok.stderr).toBe(0);
      expect(JSON.parse(ok.stdout).steps).toEqual({ signature: 'ok', integrity: 'ok', binding: 'ok', rebuild: 'ok' });

      const last = (await checkImageIntegrity(image)).layers.at(-1)!.digest;
      const bad = join(proj, 'tampered.tar');
      await flipByte(image, bad, bodyOffset(readFileSync(image), `blobs/sha256/${last.slice(7)}`) + 40);
      expectCleanFailure(
        cli(['verify', bad, sig, '--keyring', key.publicPath, '--no-rebuild']),
        7,
        /corrupted/,
        expect,
      );

      expectCleanFailure(
        cli(['verify', image, otherSig, '--keyring', key.publicPath, '--no-rebuild']),
        8,
        /built from a different manifest/,
        expect,
      );
    }, 120_000);
  }
});

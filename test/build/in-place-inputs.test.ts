/**
 * files: inputs of a `minimize: false` build are read once, as the layer is
 * written: their pins are checked against exactly the bytes written, before
 * the image is put in place, and the SBOM (written in the middle of the
 * layer) lists their real digests, whether they sort before it or after it.
 * The CLI (compiled) hashes a layer this big on a second thread; the
 * in-process build (TypeScript sources) hashes it inline: same bytes.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildImage } from '../../src/build/build.js';
import { mkimg } from '../helpers/cli.js';
import { prng } from '../helpers/prng.js';

const work = mkdtempSync(join(tmpdir(), 'mkimg-in-place-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const proj = join(work, 'proj');
const manifest = join(proj, 'image.yaml');
/** Input files (relative to proj) and the image paths they land at. */
const placed: [string, string][] = [];

beforeAll(() => {
  const rnd = prng(5);
  // ~20 MB in 300 files: above the size at which the CLI hashes the layer on a second thread.
  const write = (rel: string, size: number) => {
    const b = Buffer.alloc(size);
    for (let i = 0; i < size; i++) b[i] = Math.floor(rnd() * 256);
    mkdirSync(join(proj, rel, '..'), { recursive: true });
    writeFileSync(join(proj, rel), b);
  };
  for (let i = 0; i < 300; i++)
    write(`app/d${i % 9}/f${i}`, i === 3 ? 0 : i === 4 ? 1 : 20_000 + ((i * 7919) % 120_000));
  write('site/index.html', 5000); // lands under /var/www: sorts after the SBOM
  write('zz/tool', 3000); // lands under /usr/share/zz: after the SBOM too
  write('same.txt', 100); // one host file at two image paths
  for (let i = 0; i < 300; i++) placed.push([`app/d${i % 9}/f${i}`, `/app/d${i % 9}/f${i}`]);
  placed.push(
    ['site/index.html', '/var/www/index.html'],
    ['zz/tool', '/usr/share/zz/tool'],
    ['same.txt', '/etc/a.txt'],
    ['same.txt', '/srv/b.txt'],
  );
  writeFileSync(
    manifest,
    [
      'apiVersion: mkimg/v1',
      'name: test/in-place',
      'sourceDateEpoch: 1700000000',
      'minimize: false',
      'files:',
      '  - {src: app/, dest: /app}',
      '  - {src: site/, dest: /var/www}',
      '  - {src: zz/, dest: /usr/share/zz}',
      '  - {src: same.txt, dest: /etc/a.txt}',
      '  - {src: same.txt, dest: /srv/b.txt}',
      '',
    ].join('\n'),
  );
  const r = mkimg(['lock', manifest]);
  expect(r.code, r.stderr).toBe(0);
});

const digest = (alg: string, b: Buffer) => createHash(alg).update(b).digest('hex');

function sbomOf(image: string): {
  files: { fileName: string; checksums: { algorithm: string; checksumValue: string }[] }[];
  packages: { SPDXID: string; packageVerificationCode?: { packageVerificationCodeValue: string } }[];
} {
  const out = join(work, `sbom-${Math.random().toString(36).slice(2)}.json`);
  const r = mkimg(['inspect', image, '--sbom', out]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(readFileSync(out, 'utf8'));
}

describe('files: inputs read in place', () => {
  it('CLI (hashed on a second thread) and in-process (inline) builds give the same bytes; the SBOM lists every input with its real digests', async () => {
    const outCli = join(work, 'cli');
    mkdirSync(outCli);
    const r = mkimg([
      'build',
      manifest,
      '-o',
      join(outCli, 'image.tar'),
      '--sbom',
      join(outCli, 'sbom.json'),
      '--work-dir',
      outCli,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const outApi = join(work, 'api');
    mkdirSync(outApi);
    await buildImage({ manifestPath: manifest, output: join(outApi, 'image.tar'), quiet: true, workDir: outApi });
    expect(readFileSync(join(outCli, 'image.tar')).equals(readFileSync(join(outApi, 'image.tar')))).toBe(true);

    const sbom = sbomOf(join(outCli, 'image.tar'));
    const byName = new Map(
      sbom.files.map((f) => [f.fileName, Object.fromEntries(f.checksums.map((c) => [c.algorithm, c.checksumValue]))]),
    );
    const inputSha1s: string[] = [];
    for (const [rel, path] of placed) {
      const b = readFileSync(join(proj, rel));
      expect(byName.get(path), path).toEqual({ SHA1: digest('sha1', b), SHA256: digest('sha256', b) });
      inputSha1s.push(digest('sha1', b));
    }
    // The inputs' package verification code (SPDX: sha1 of the sorted file sha1s) is made from the real digests too.
    const inputs = sbom.packages.find((p) => p.SPDXID === 'SPDXRef-Package-mkimg-inputs')!;
    expect(inputs.packageVerificationCode!.packageVerificationCodeValue).toBe(
      digest('sha1', Buffer.from(inputSha1s.sort().join(''))),
    );
    // --sbom wrote the SBOM stored in the image, byte for byte.
    const fromImage = join(work, 'sbom-from-image.json');
    expect(mkimg(['inspect', join(outCli, 'image.tar'), '--sbom', fromImage]).code).toBe(0);
    expect(readFileSync(fromImage).equals(readFileSync(join(outCli, 'sbom.json')))).toBe(true);
    // Nothing left beside the image.
    expect(readdirSync(outCli).sort()).toEqual(['image.tar', 'sbom.json']);
  });

  for (const [what, rel] of [
    ['before the SBOM (recorded as the layer is written)', 'app/d5/f50'],
    ['after the SBOM (read before it)', 'site/index.html'],
  ] as const) {
    it(`an input changed since the lock, ${what}: exit 4 naming it, no image and no temporary file left`, () => {
      const path = join(proj, rel);
      const original = readFileSync(path);
      const changed = Buffer.from(original);
      changed[changed.length >> 1] ^= 0xff; // same size: only the digest tells
      writeFileSync(path, changed);
      try {
        const out = join(work, `changed-${rel.replace(/\W/g, '-')}`);
        mkdirSync(out);
        const r = mkimg(['build', manifest, '-o', join(out, 'image.tar'), '--work-dir', out]);
        expect(r.code).toBe(4);
        const src = rel.split('/')[0];
        expect(r.stderr).toMatch(
          new RegExp(
            `^mkimg: error: files\\[\\d\\]\\.src: \\S*${src} changed: expected sha256 [0-9a-f]{64}, got [0-9a-f]{64}\\n`,
          ),
        );
        expect(r.stderr).toMatch(/mkimg lock/);
        expect(readdirSync(out)).toEqual([]);
      } finally {
        writeFileSync(path, original);
      }
    });
  }
});

/**
 * A byte flipped inside a layer (its blob keeps its name): `mkimg verify`
 * says the image is tampered, and `mkimg diff` says the same thing, naming
 * the layer and the file, not "framing".
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mkimg } from '../helpers/cli.js';
import { checkImageIntegrity } from '../../src/verify/integrity.js';
import type { MkimgError } from '../../src/util/errors.js';

let work: string;
let a: string;
let b: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'mkimg-diff-tamper-'));
  const proj = join(work, 'proj');
  mkdirSync(proj);
  writeFileSync(join(proj, 'msg.txt'), 'TAMPER-ME-PLEASE\n');
  const m = join(proj, 'manifest.yaml');
  writeFileSync(
    m,
    'apiVersion: mkimg/v1\nname: test/tamper\ntag: "1"\nsourceDateEpoch: 1700000000\nfiles:\n  - src: msg.txt\n    dest: /msg.txt\nminimize: false\n# uncompressed, so the test finds the file\'s bytes in the tar\ncompression: none\nlayering: { strategy: single }\n',
  );
  expect(mkimg(['lock', m]).code).toBe(0);
  a = join(work, 'a.tar');
  expect(mkimg(['build', m, '-o', a]).code).toBe(0);
  const bytes = readFileSync(a);
  const at = bytes.indexOf('TAMPER-ME-PLEASE');
  expect(at).toBeGreaterThan(0);
  bytes[at] = 'X'.charCodeAt(0);
  b = join(work, 'b.tar');
  writeFileSync(b, bytes);
}, 120_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('a flipped byte inside a layer', () => {
  it('verify says tampered; diff says the layer content does not match its digest and names the file', async () => {
    const e = await checkImageIntegrity(b).then(
      () => null,
      (x: unknown) => x as MkimgError,
    );
    expect(e?.kind).toBe('integrity');
    const d = mkimg(['diff', a, b]);
    expect(d.code).toBe(9);
    expect(d.stdout + d.stderr).toMatch(
      /layer 0: in the second image its content does not match its digest .*tampered or corrupt/,
    );
    expect(d.stdout + d.stderr).toMatch(/layer 0: msg\.txt: content differs|msg\.txt/);
    expect(d.stdout + d.stderr).not.toMatch(/framing/);
  });
});

/**
 * readInputs: one read per input file, on one or two threads, with the same
 * digests either way. The two-thread path needs the compiled worker,
 * so it is exercised through dist/ (`npm test` compiles first).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readInputs as readInputsHere, type InputDigests } from '../../src/stage/read-inputs.js';
import { tempDir } from '../helpers/debbuild.js';

let work: string;
const paths: string[] = [];
let total = 0;
beforeAll(() => {
  work = tempDir('read-inputs');
  // Enough files and bytes for the worker thread to start (>= 256 files, >= 16 MB).
  for (let i = 0; i < 300; i++) {
    const dir = join(work, `d${i % 10}`);
    mkdirSync(dir, { recursive: true });
    const size = i === 7 ? 0 : (i * 7919) % 120_000;
    const buf = Buffer.alloc(size);
    for (let j = 0; j < size; j++) buf[j] = (i * 31 + j * 17) & 0xff;
    const p = join(dir, `f${i}`);
    writeFileSync(p, buf);
    paths.push(p);
    total += size;
  }
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

function expected(p: string) {
  const b = readFileSync(p);
  return {
    sha256: createHash('sha256').update(b).digest('hex'),
    sha1: createHash('sha1').update(b).digest('hex'),
    size: b.length,
  };
}

function check(got: InputDigests[]) {
  expect(got.length).toBe(paths.length);
  got.forEach((d, i) => expect(d, paths[i]).toEqual(expected(paths[i])));
}

describe('readInputs', () => {
  test('one thread: digests of every file', async () => {
    check(await readInputsHere(paths, { totalBytes: 0 }));
  });

  test('two threads (compiled worker): the same digests, in input order', async () => {
    const compiled = join(__dirname, '../../dist/stage/read-inputs.js');
    expect(existsSync(compiled), 'run `npm run build` first').toBe(true);
    const mod = (await import(compiled)) as { readInputs: typeof readInputsHere };
    expect(total).toBeGreaterThan(16 << 20);
    check(await mod.readInputs(paths, { totalBytes: total }));
  });

  test('a file that cannot be read is an input error naming it, on either thread', async () => {
    const compiled = join(__dirname, '../../dist/stage/read-inputs.js');
    const mod = (await import(compiled)) as { readInputs: typeof readInputsHere };
    const gone = [...paths];
    gone[150] = join(work, 'vanished');
    await expect(mod.readInputs(gone, { totalBytes: total })).rejects.toThrow(
      new RegExp(`files: cannot read ${gone[150]} \\(ENOENT\\)`),
    );
    await expect(readInputsHere(gone, { totalBytes: 0 })).rejects.toThrow(/ENOENT/);
  });
});

/**
 * code-cache.ts: a CommonJS file loaded with its V8 code cache gives the
 * module's own behaviour, whatever the cache holds: a cache made from other
 * text (even of the same length, which is all V8 itself compares), a damaged
 * one, or one V8 refuses is not used, and is made again. Each load runs in a
 * fresh Node.js process (built dist/), as mkimg's do: within one process V8
 * reuses what it compiled already and never reads a cache.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { cacheFileOf } from '../../src/manifest/code-cache.js';
import { PROJECT_ROOT } from '../helpers/cli.js';

const work = mkdtempSync(join(tmpdir(), 'mkimg-code-cache-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const LOADER = pathToFileURL(join(PROJECT_ROOT, 'dist', 'manifest', 'code-cache.js')).href;

/** A module whose answer is in its code, and that uses require and __dirname as Node.js gives them. */
function moduleText(answer: string): string {
  return `"use strict";
const { basename } = require('node:path');
module.exports = function ask() { return ${JSON.stringify(answer)} + ':' + basename(__dirname); };
`;
}

/** Load `path` in a new process, call it, make the cache when asked: [how it was compiled, what it answered]. */
function load(path: string, make = true): [string, string] {
  const r = spawnSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { loadCommonJsCached } from ${JSON.stringify(LOADER)};
const m = loadCommonJsCached(${JSON.stringify(path)});
const answer = m.exports();
if (${make} && m.cache === 'compiled') m.make();
process.stdout.write(JSON.stringify([m.cache, answer]));`,
    ],
    { encoding: 'utf8' },
  );
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as [string, string];
}

function file(name: string, answer: string): string {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'm.cjs');
  writeFileSync(path, moduleText(answer));
  return path;
}

describe('loadCommonJsCached', () => {
  it('compiles from the text without a cache, makes one, then uses it, with the same behaviour', () => {
    const path = file('a', 'aaaa');
    expect(load(path)).toEqual(['compiled', 'aaaa:a']);
    expect(load(path)).toEqual(['used', 'aaaa:a']);
  });

  it('does not use a cache of other text of the same length: the new text is what runs', () => {
    const path = file('b', 'bbbb');
    load(path);
    writeFileSync(path, moduleText('cccc'));
    expect(load(path)).toEqual(['compiled', 'cccc:b']);
    expect(load(path)).toEqual(['used', 'cccc:b']);
  });

  it('does not use a damaged cache, nor one V8 refuses, and makes it again', () => {
    const path = file('c', 'dddd');
    load(path);
    const cache = cacheFileOf(path);
    const good = readFileSync(cache);
    const damaged = Buffer.from(good);
    damaged[damaged.length - 10]! ^= 0xff;
    writeFileSync(cache, damaged);
    expect(load(path, false)).toEqual(['compiled', 'dddd:c']);
    // The right key and payload digest, but nothing V8 can read.
    const junk = Buffer.from('not a code cache');
    const digest = Buffer.from(createHash('sha256').update(junk).digest('hex'));
    writeFileSync(cache, Buffer.concat([good.subarray(0, 64), digest, junk]));
    expect(load(path)).toEqual(['compiled', 'dddd:c']);
    expect(load(path)).toEqual(['used', 'dddd:c']);
  });

  it('goes without a cache where it cannot write one', () => {
    const path = file('d', 'eeee');
    mkdirSync(cacheFileOf(path)); // a directory where the cache would go: the rename fails
    expect(load(path)).toEqual(['compiled', 'eeee:d']);
    expect(load(path)).toEqual(['compiled', 'eeee:d']);
  });
});

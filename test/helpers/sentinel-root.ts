/**
 * Staging roots for extraction tests, each with a sentinel directory beside
 * it: an escape from the root shows up as a change to the sentinel or as a
 * new file next to the root.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { createStagingRoot } from '../../src/stage/root.js';
import type { StagingRoot } from '../../src/stage/types.js';

export interface SentinelCase {
  root: StagingRoot;
  caseDir: string;
  sentinel: string;
}

/** Roots at <work>/case-N/root with <work>/case-N/sentinel beside each. */
export function sentinelRoots(work: () => string): () => Promise<SentinelCase> {
  let n = 0;
  return async () => {
    const caseDir = join(work(), `case-${++n}`);
    const sentinel = join(caseDir, 'sentinel');
    mkdirSync(sentinel, { recursive: true });
    writeFileSync(join(sentinel, 'target'), 'original');
    const root = await createStagingRoot(join(caseDir, 'root'));
    return { root, caseDir, sentinel };
  };
}

export function sentinelIntact(sentinel: string): void {
  expect(readdirSync(sentinel)).toEqual(['target']);
  expect(readFileSync(join(sentinel, 'target'), 'utf8')).toBe('original');
  expect(
    readdirSync(join(sentinel, '..'))
      .filter((f) => !f.endsWith('.deb'))
      .sort(),
  ).toEqual(['root', 'sentinel']);
}

/** The report's line diff: a shortest edit script (checked against an LCS table on random inputs), hunks, and its bound. */
import { describe, expect, it } from 'vitest';
import { editScript, lineDiff } from '../../src/util/line-diff.js';
import { prng } from '../helpers/prng.js';

function lcs(a: string[], b: string[]): number {
  const t = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--)
    for (let j = b.length - 1; j >= 0; j--)
      t[i][j] = a[i] === b[j] ? t[i + 1][j + 1] + 1 : Math.max(t[i + 1][j], t[i][j + 1]);
  return t[0][0];
}

describe('editScript', () => {
  it('turns a into b with the fewest edits (random inputs against an LCS table)', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const r = prng(seed);
      const gen = () => Array.from({ length: Math.floor(r() * 14) }, () => 'abcd'[Math.floor(r() * 4)]);
      const a = gen();
      const b = gen();
      const ops = editScript(a, b)!;
      expect(
        ops.filter((o) => o[0] !== '+').map((o) => a[o[1]]),
        `seed ${seed}`,
      ).toEqual(a);
      expect(
        ops.filter((o) => o[0] !== '-').map((o) => b[o[2]]),
        `seed ${seed}`,
      ).toEqual(b);
      for (const o of ops) if (o[0] === ' ') expect(a[o[1]]).toBe(b[o[2]]);
      expect(ops.filter((o) => o[0] !== ' ').length, `seed ${seed}`).toBe(a.length + b.length - 2 * lcs(a, b));
    }
  });

  it('gives up past the edit bound', () => {
    const a = Array.from({ length: 100 }, (_, i) => `a${i}`);
    const b = Array.from({ length: 100 }, (_, i) => `b${i}`);
    expect(editScript(a, b, 50)).toBeUndefined();
    expect(editScript(a, b, 200)).toHaveLength(200);
  });
});

describe('lineDiff', () => {
  it('groups changes into hunks with three lines of context', () => {
    const a = Array.from({ length: 20 }, (_, i) => `line ${i + 1}`).join('\n') + '\n';
    const b = a.replace('line 2\n', 'line two\n').replace('line 18\n', '');
    expect(lineDiff(a, b)).toEqual([
      { a: 1, b: 1, lines: [' line 1', '-line 2', '+line two', ' line 3', ' line 4', ' line 5'] },
      { a: 15, b: 15, lines: [' line 15', ' line 16', ' line 17', '-line 18', ' line 19', ' line 20'] },
    ]);
    expect(lineDiff(a, a)).toEqual([]);
    expect(lineDiff('', 'x\n')).toEqual([{ a: 1, b: 1, lines: ['+x'] }]);
  });
});

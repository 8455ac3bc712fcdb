import { describe, it, expect } from 'vitest';
import { execFileSync } from 'node:child_process';
import { compareVersions, satisfiesVersion } from '../../src/debian/version.js';

/** Ask dpkg for the order of many pairs in one shell run. */
function dpkgOrder(pairs: [string, string][]): number[] {
  const script = pairs
    .map(
      ([a, b]) =>
        `if dpkg --compare-versions '${a}' lt '${b}'; then echo -1; elif dpkg --compare-versions '${a}' eq '${b}'; then echo 0; else echo 1; fi`,
    )
    .join('\n');
  return execFileSync('bash', ['-c', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
    .trim()
    .split('\n')
    .map(Number);
}

const sign = (n: number) => (n < 0 ? -1 : n > 0 ? 1 : 0);

// Deterministic PRNG so a failure reproduces.
function rng(seed: number) {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

function randomVersion(r: () => number): string {
  const pick = (s: string) => s[Math.floor(r() * s.length)]!;
  const part = (alphabet: string, max: number) => {
    let out = '';
    const len = 1 + Math.floor(r() * max);
    for (let i = 0; i < len; i++) out += pick(alphabet);
    return out;
  };
  let v = pick('0123456789') + part('0123456789.~+abcz0', 6);
  if (r() < 0.3) v = `${Math.floor(r() * 3)}:${v}`;
  if (r() < 0.6) v += '-' + part('0123456789.~+a', 4);
  return v;
}

describe('Debian version ordering', () => {
  it('orders tricky versions like dpkg --compare-versions', () => {
    const tricky: [string, string][] = [
      ['1.0', '1.0'],
      ['1.0~rc1', '1.0'],
      ['1.0~~', '1.0~'],
      ['1.0~', '1.0'],
      ['1.0', '1.0+b1'],
      ['1:0.9', '2.0'],
      ['0:1.0', '1.0'],
      ['1.0-1', '1.0-1~bpo1'],
      ['2.36-9+deb12u4', '2.36-9+deb12u10'],
      ['1.0a', '1.0+'],
      ['1.0', '1.0.0'],
      ['1.00', '1.0'],
      ['1.0-0', '1.0'],
      ['3.0.11-1~deb12u2', '3.0.11-1'],
      ['a', 'b'],
      ['1.2.3', '1.2.10'],
      ['1.0-1.1', '1.0-1'],
      ['10', '9'],
      ['1~', '1~~a'],
      ['1.0-a', '1.0-+'],
      ['7.88.1-10+deb12u5', '7.88.1-10+deb12u12'],
      ['2:1.0', '10:0.1'],
      ['1.0.', '1.0'],
      ['1-2-3', '1-2'],
    ];
    const want = dpkgOrder(tricky);
    tricky.forEach(([a, b], i) => {
      expect(sign(compareVersions(a, b)), `${a} vs ${b}`).toBe(want[i]);
      expect(sign(compareVersions(b, a)), `${b} vs ${a}`).toBe(0 - want[i]! || 0);
    });
  });

  it('agrees with dpkg on 400 random pairs', () => {
    const r = rng(20240611);
    const pairs: [string, string][] = [];
    for (let i = 0; i < 400; i++) {
      const a = randomVersion(r);
      // half the time a near neighbour of a, so equal-ish cases are common
      const b = r() < 0.5 ? randomVersion(r) : a.replace(/\d(?!.*\d)/, (d) => String((Number(d) + 1) % 10));
      pairs.push([a, b]);
    }
    const want = dpkgOrder(pairs);
    const bad = pairs.filter(([a, b], i) => sign(compareVersions(a, b)) !== want[i]);
    expect(bad).toEqual([]);
  });

  it('evaluates relations', () => {
    expect(satisfiesVersion('3.0.11-1~deb12u2', '>=', '3.0.0')).toBe(true);
    expect(satisfiesVersion('1.0~rc1', '>=', '1.0')).toBe(false);
    expect(satisfiesVersion('1.0', '<<', '1.0')).toBe(false);
    expect(satisfiesVersion('1.0', '<=', '1.0')).toBe(true);
    expect(satisfiesVersion('1:1.0', '>>', '9.9')).toBe(true);
    expect(satisfiesVersion('2.0', '=', '2.0')).toBe(true);
  });
});

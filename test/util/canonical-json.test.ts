/**
 * canonicalJson is fast (JSON.stringify over a key-sorted tree) but must print
 * exactly what the plain definition prints: a straightforward reference
 * serializer, compared on many random values.
 */
import { describe, expect, it } from 'vitest';
import { canonicalJson, canonicalJsonBytes } from '../../src/util/canonical-json.js';
import { prng } from '../helpers/prng.js';

/** The format, written the obvious way (the implementation mkimg had before). */
function reference(v: unknown): string {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v);
    case 'number':
      if (!Number.isFinite(v)) throw new TypeError(`canonical JSON: non-finite number ${v}`);
      return JSON.stringify(v);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'object': {
      if (Array.isArray(v)) return '[' + v.map((x) => (x === undefined ? 'null' : reference(x))).join(',') + ']';
      const obj = v as Record<string, unknown>;
      const keys = Object.keys(obj)
        .filter((k) => obj[k] !== undefined)
        .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      return '{' + keys.map((k) => JSON.stringify(k) + ':' + reference(obj[k])).join(',') + '}';
    }
    default:
      throw new TypeError(`canonical JSON: cannot encode ${typeof v}`);
  }
}

const KEYS = [
  'a',
  'b',
  'B',
  'Z',
  '_',
  '~',
  'aa',
  'ab',
  'a b',
  'SPDXID',
  'spdxElementId',
  'checksums',
  '',
  ' ',
  '"',
  '\\',
  '\n',
  '\u0000',
  '\u001f',
  '\u007f',
  'é',
  'e\u0301',
  'ß',
  '日本',
  '中',
  '😀',
  '😀a',
  '\ud800',
  '\udfff',
  '\uffff',
  '\ue000',
  'Ω',
  // integer-like keys: JavaScript objects list these first, in numeric order
  '0',
  '1',
  '2',
  '9',
  '10',
  '01',
  '00',
  '-1',
  '1.5',
  '4294967294',
  '4294967295',
  '99999999999999999999',
  '__proto__',
  'toJSON',
  'constructor',
  'hasOwnProperty',
];

const STRINGS = [
  '',
  'x',
  'hello world',
  'quote " and \\ backslash',
  'tab\tnew\nline\r',
  '\u0000\u0001\u001f',
  '\u2028\u2029',
  'é ü ß 日本語',
  '😀 emoji 👩‍👩‍👧',
  '\ud83d',
  'a\udc00b',
  '</script>',
  '\u007f\u0080',
];

const NUMBERS = [
  0,
  -0,
  1,
  -1,
  42,
  0.1,
  -2.5,
  1e21,
  1e-7,
  123456789.123,
  Number.MAX_SAFE_INTEGER,
  Number.MIN_VALUE,
  Number.MAX_VALUE,
  4294967295,
  2 ** 53 + 2,
];

function randomValue(rnd: () => number, depth: number): unknown {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const r = rnd();
  if (depth <= 0 || r < 0.45) {
    const p = rnd();
    if (p < 0.35) return pick(STRINGS) + (rnd() < 0.3 ? String.fromCharCode(Math.floor(rnd() * 0x10000)) : '');
    if (p < 0.6) return rnd() < 0.5 ? pick(NUMBERS) : (rnd() - 0.5) * 10 ** Math.floor(rnd() * 30 - 10);
    if (p < 0.75) return rnd() < 0.5;
    if (p < 0.88) return null;
    return undefined;
  }
  if (r < 0.65) {
    const n = Math.floor(rnd() * 6);
    return Array.from({ length: n }, () => randomValue(rnd, depth - 1));
  }
  const obj: Record<string, unknown> = rnd() < 0.1 ? Object.create(null) : {};
  const n = Math.floor(rnd() * 8);
  for (let i = 0; i < n; i++) {
    const k = rnd() < 0.6 ? pick(KEYS) : pick(KEYS) + pick(KEYS);
    // defineProperty, so "__proto__" becomes an own key like any other
    Object.defineProperty(obj, k, {
      value: randomValue(rnd, depth - 1),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return obj;
}

function outcome(f: (v: unknown) => string, v: unknown): string {
  try {
    return 'ok:' + f(v);
  } catch (e) {
    return `throws ${(e as Error).constructor.name}: ${(e as Error).message}`;
  }
}

describe('canonical JSON', () => {
  it('matches the reference serializer on random nested values', () => {
    let objects = 0;
    for (let seed = 1; seed <= 3000; seed++) {
      const v = randomValue(prng(seed), 5);
      if (v !== null && typeof v === 'object') objects++;
      const want = outcome(reference, v);
      const got = outcome(canonicalJson, v);
      if (got !== want) expect({ seed, got }).toEqual({ seed, got: want });
    }
    expect(objects).toBeGreaterThan(1000);
  });

  it('matches the reference on values without integer-like keys (the JSON.stringify path)', () => {
    const plain = /^(?:[0-9]+|__proto__)$/;
    for (let seed = 10_000; seed < 12_000; seed++) {
      const v = JSON.parse(
        JSON.stringify(randomValue(prng(seed), 5) ?? null, function (this: unknown, k: string, x: unknown) {
          return !Array.isArray(this) && plain.test(k) ? undefined : x;
        }),
      );
      expect(canonicalJson(v)).toBe(reference(v));
    }
  });

  it('sorts keys by UTF-16 code units, integer-like keys included', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: undefined } })).toBe(
      '{"a":{"d":[1,{"y":2,"z":1}]},"b":1}',
    );
    expect(canonicalJson({ 10: 'x', 9: 'y', a: 1, '😀': 2, '\uffff': 3, Z: 4 })).toBe(
      '{"10":"x","9":"y","Z":4,"a":1,"😀":2,"\uffff":3}',
    );
    expect(canonicalJson(JSON.parse('{"__proto__":{"b":1,"a":2},"_":0}'))).toBe('{"_":0,"__proto__":{"a":2,"b":1}}');
  });

  it('drops undefined members, prints undefined array elements as null', () => {
    expect(canonicalJson({ a: undefined, b: [undefined, 1, undefined], c: { d: undefined } })).toBe(
      '{"b":[null,1,null],"c":{}}',
    );
    expect(canonicalJson([])).toBe('[]');
    expect(canonicalJson({})).toBe('{}');
    expect(canonicalJson(-0)).toBe('0');
    expect(canonicalJson('\ud800')).toBe('"\\ud800"');
  });

  it('ignores toJSON and prototypes, as the reference does', () => {
    class Point {
      constructor(
        public y: number,
        public x: number,
      ) {}
      toJSON() {
        return 'not this';
      }
    }
    const date = new Date(0);
    const hidden = Object.defineProperty({ b: 1, a: 2 }, 'toJSON', { value: () => 'nor this', enumerable: false });
    const arr = Object.assign([2, 1], { toJSON: undefined as unknown });
    Object.defineProperty(arr, 'toJSON', { value: () => 'nor that', enumerable: false });
    for (const v of [
      new Point(1, 2),
      date,
      hidden,
      { p: new Point(3, 4), d: date },
      arr,
      Buffer.from('ab'),
      new Map([[1, 2]]),
    ]) {
      expect(canonicalJson(v)).toBe(reference(v));
    }
  });

  it('throws what the reference throws', () => {
    for (const v of [
      NaN,
      Infinity,
      { a: 1, b: -Infinity },
      [1, () => 1],
      { f: Symbol('s') },
      { n: 1n },
      undefined,
      { z: NaN, a: { b: () => 0 } },
    ]) {
      expect(outcome(canonicalJson, v)).toBe(outcome(reference, v));
      expect(outcome(canonicalJson, v)).toMatch(/^throws TypeError: canonical JSON: /);
    }
  });

  it('does not change the value it prints', () => {
    const v = { b: [3, { d: 1, c: undefined }], a: 'x' };
    const before = JSON.stringify(v);
    canonicalJson(v);
    expect(JSON.stringify(v)).toBe(before);
    expect(Object.keys(v)).toEqual(['b', 'a']);
    expect(canonicalJsonBytes(v).toString('utf8')).toBe('{"a":"x","b":[3,{"d":1}]}');
  });
});

import { describe, expect, it } from 'vitest';
import { normImagePath } from '../../src/system/rootfs.js';
import { isNormalImagePath, pathOrder } from '../../src/util/path-order.js';

const samples = [
  '/',
  '//',
  '/usr',
  '/usr/',
  '//usr',
  '/usr//lib',
  '/usr/./lib',
  '/usr/../lib',
  '/usr/lib/.',
  '/usr/lib/..',
  '/.',
  '/..',
  '/usr/.hidden',
  '/usr/..hidden',
  '/usr/lib/x..y',
  '/usr/lib/...',
  '/usr/lib/.../x',
  'usr/lib',
  '',
  '.',
  './usr',
  '/usr/share/doc/libpython3.11-stdlib/copyright',
  '/é/ü',
];

describe('isNormalImagePath', () => {
  it('holds exactly for paths normImagePath leaves as they are', () => {
    for (const p of samples) expect([p, isNormalImagePath(p)]).toEqual([p, normImagePath(p) === p]);
  });

  it('holds for whatever normImagePath gives', () => {
    for (const p of samples) expect([p, isNormalImagePath(normImagePath(p))]).toEqual([p, true]);
  });
});

/** The reference order: the UTF-8 bytes themselves. */
const bytesOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

describe('pathOrder', () => {
  it('is UTF-8 byte order, surrogates included', () => {
    const s = ['/a', '/a/b', '/ab', '/a-b', '/é', '/\u{1f600}', '/\uffff', '/\ud800', '/\ud800x', '/Z', '/'];
    const bytes = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
    for (const a of s) for (const b of s) expect([a, b, Math.sign(pathOrder(a, b))]).toEqual([a, b, bytes(a, b)]);
  });

  it('orders paths as their UTF-8 bytes do, surrogates and lone surrogates included', () => {
    const parts = [
      '/',
      'a',
      'b',
      'B',
      '.',
      '-',
      '~',
      'é',
      'ÿ',
      '\u07ff',
      '\u0800',
      '日',
      '\ud7ff',
      '\ue000',
      '\uffff',
      '😀',
      '𝄞',
      '\ud83d',
      '\ude00',
      '\ufffd',
      '\u0000',
    ];
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
    const paths = Array.from({ length: 2000 }, () =>
      Array.from({ length: 1 + Math.floor(rnd() * 6) }, () => parts[Math.floor(rnd() * parts.length)]).join(''),
    );
    for (let i = 0; i < paths.length; i++) {
      const a = paths[i]!;
      const b = i % 3 === 0 ? a.slice(0, Math.floor(rnd() * a.length)) : paths[Math.floor(rnd() * paths.length)]!;
      expect([a, b, Math.sign(pathOrder(a, b))]).toEqual([a, b, Math.sign(bytesOrder(a, b))]);
    }
    expect([...paths].sort(pathOrder)).toEqual([...paths].sort(bytesOrder));
  });
});

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

describe('pathOrder', () => {
  it('is UTF-8 byte order, surrogates included', () => {
    const s = ['/a', '/a/b', '/ab', '/a-b', '/é', '/\u{1f600}', '/\uffff', '/\ud800', '/\ud800x', '/Z', '/'];
    const bytes = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
    for (const a of s) for (const b of s) expect([a, b, Math.sign(pathOrder(a, b))]).toEqual([a, b, bytes(a, b)]);
  });
});

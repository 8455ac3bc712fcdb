/**
 * The lock: section read and written without the YAML library: for every
 * text it accepts, its reading is the library's; for every lock it writes, the
 * library writes the same bytes; anything outside the written shape is left
 * to the library (undefined).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { Document, parseDocument } from 'yaml';
import { lockSectionText, normalizeLock } from '../../src/lock/write.js';
import type { Lock } from '../../src/manifest/types.js';
import { readWrittenLock, writeLockText } from '../../src/manifest/lock-text.js';

const examples = join(import.meta.dirname, '../../examples');
const library = (text: string) => parseDocument(text).toJS() as Record<string, unknown>;

const pkg = (name: string, version: string, extra: Partial<Lock['packages'][number]> = {}) => ({
  name,
  version,
  architecture: 'amd64',
  suite: 'bookworm',
  filename: `pool/main/x/${name}_${version}_amd64.deb`,
  size: 1234,
  sha256: 'ab'.repeat(32),
  ...extra,
});

describe('the written lock section', () => {
  test("every shipped example's lock reads as the YAML library reads it, and writes back byte for byte", () => {
    const shipped = readdirSync(examples).filter((ex) => existsSync(join(examples, ex, 'manifest.yaml')));
    expect(shipped.length).toBeGreaterThanOrEqual(4);
    for (const ex of shipped) {
      const text = readFileSync(join(examples, ex, 'manifest.yaml'), 'utf8');
      const r = readWrittenLock(text);
      expect(r, ex).toBeDefined();
      expect(r!.lock).toEqual(library(text).lock);
      expect(text.slice(0, r!.head.length)).toBe(r!.head);
      expect(writeLockText(r!.lock)).toBe(text.slice(r!.head.length));
    }
  });

  test('the writer gives the bytes the YAML library gives, for single and multi-architecture locks', () => {
    const locks: Lock[] = [
      { version: 1, packages: [pkg('libc6', '2.36-9+deb12u14'), pkg('tzdata', '2026f-0+deb12u1')], files: [] },
      {
        version: 1,
        resolution: 'cd'.repeat(32),
        packages: [pkg('libcrypt1', '1:4.4.33-2', { dataSha256: 'ef'.repeat(32) })],
        variants: { debug: { packages: [pkg('busybox', '1:1.35.0-4+b3')] } },
        files: [{ src: 'app/', sha256: 'a1'.repeat(32) }],
      },
      {
        version: 1,
        packages: [],
        architectures: {
          amd64: { packages: [pkg('libc6', '2.36-9')] },
          arm64: { packages: [pkg('libc6', '2.36-9', { architecture: 'arm64' })] },
        },
        files: [{ src: 'a/b.txt', sha256: 'b2'.repeat(32) }],
      },
    ];
    for (const lock of locks) {
      const value = normalizeLock(lock);
      const fast = writeLockText(value);
      expect(fast).toBe(new Document({ lock: value }).toString({ lineWidth: 0 }));
      expect(lockSectionText(lock)).toBe(fast);
      expect(readWrittenLock(`name: x\n${fast}`)?.lock).toEqual(library(fast!).lock);
    }
  });

  test('words YAML reads as something else are left to the library, which quotes them', () => {
    for (const version of [
      '1.0',
      '123',
      '1e5',
      'true',
      'null',
      '~',
      '.inf',
      '0x1F',
      '-1',
      'a b',
      'a: b',
      '#x',
      "it's",
    ]) {
      const value = normalizeLock({ version: 1, packages: [pkg('p', version)], files: [] });
      expect(writeLockText(value), version).toBeUndefined();
      const text = lockSectionText({ version: 1, packages: [pkg('p', version)], files: [] });
      const r = readWrittenLock(text);
      if (r) expect(r.lock).toEqual(library(text).lock); // quoted by the library: not the written shape
      expect(library(text).lock).toMatchObject({ packages: [{ version }] });
    }
  });

  test('any other shape is left to the library', () => {
    const written = lockSectionText({ version: 1, packages: [pkg('libc6', '2.36-9')], files: [] });
    const shapes = [
      written.replace('lock:\n', 'lock:  \n'), // trailing space
      written.replace('  version: 1\n', '  version: 1 # pinned\n'),
      written.replace('  version: 1\n', '  # a comment\n  version: 1\n'),
      `${written}other: 1\n`, // not last
      written.slice(0, -1), // no final newline
      written.replace('      version: 2.36-9\n', '      version: "2.36-9"\n'),
      written.replace('      version: 2.36-9\n', "      version: '2.36-9'\n"),
      written.replaceAll('\n  ', '\n   '), // three-space indentation
      written.replace('    - name', '    -  name'),
      written.replace('      size: 1234\n', '      size: 1234\n      size: 1234\n'), // duplicate key
      written.replace('      size: 1234\n', '      size: 1234\n        more\n'), // continuation line
      written.replace('  version: 1\n', '\tversion: 1\n'),
      'lock: {}\n',
      'name: x\n',
    ];
    for (const text of shapes) expect(readWrittenLock(text), text).toBeUndefined();
  });
});

import { describe, it, expect } from 'vitest';
import { parseDeb822 } from '../../src/debian/control.js';
import { parseRelations, forArchitecture, formatGroup } from '../../src/debian/relations.js';
import { parsePackagesIndex } from '../../src/debian/packages.js';
import { parseRelease } from '../../src/debian/release.js';

describe('deb822 and relations', () => {
  it('parses stanzas, continuation lines and case-insensitive names', () => {
    const s = parseDeb822(
      'Package: a\nDescription: short\n long line\n .\n more\n\n\npackage: b\nVERSION: 1\n# comment\nX-Custom:  spaced  \n',
    );
    expect(s).toHaveLength(2);
    expect(s[0]!.get('description')).toBe('short\nlong line\n\nmore');
    expect(s[1]!.get('Package')).toBe('b');
    expect(s[1]!.spelling('version')).toBe('VERSION');
    expect(s[1]!.get('x-custom')).toBe('spaced');
    expect(() => parseDeb822(' orphan\n')).toThrow(/continuation/);
  });

  it('parses Depends with alternatives, versions, qualifiers, arch restrictions and profiles', () => {
    const r = parseRelations(
      'libc6 (>= 2.36), python3:any (>= 3.11~) | python3-minimal:native, foo [amd64 !i386], bar [!amd64], baz <!nocheck>, old (< 2)',
    );
    expect(r).toHaveLength(6);
    expect(r[1]![0]).toMatchObject({ name: 'python3', archQualifier: 'any', op: '>=', version: '3.11~' });
    expect(r[1]![1]).toMatchObject({ name: 'python3-minimal', archQualifier: 'native' });
    expect(r[5]![0]).toMatchObject({ op: '<=', version: '2' });
    const amd = forArchitecture(r, 'amd64').map(formatGroup);
    expect(amd).toContain('foo');
    expect(amd).not.toContain('bar');
    expect(forArchitecture(r, 'arm64').map(formatGroup)).toContain('bar');
    expect(() => parseRelations('bad name (>> )')).toThrow();
  });

  it('reads a Packages index and a Release table', () => {
    const pk = parsePackagesIndex(
      'Package: libfoo1\nVersion: 1:2.0-1\nArchitecture: amd64\nMulti-Arch: same\nDepends: libc6 (>= 2.34),\n libbar | libbaz\nProvides: libfoo (= 2.0)\nDescription: x\n y\nFilename: pool/main/f/foo/libfoo1_2.0-1_amd64.deb\nSize: 10\nSHA256: ' +
        'A'.repeat(64) +
        '\n\nPackage: foo-doc\nVersion: 1\nArchitecture: all\nFilename: p/f.deb\nSize: 1\nSHA256: ' +
        'b'.repeat(64) +
        '\n',
      { suite: 's', rank: 0 },
    );
    expect(pk).toHaveLength(2);
    expect(pk[0]!.depends.map(formatGroup)).toEqual(['libc6 (>= 2.34)', 'libbar | libbaz']);
    expect(pk[0]!.provides[0]).toMatchObject({ name: 'libfoo', op: '=', version: '2.0' });
    expect(pk[0]!.sha256).toBe('a'.repeat(64));
    const rel = parseRelease(
      'Suite: stable\nCodename: bookworm\nDate: Sat, 10 Jun 2023 08:00:00 UTC\nValid-Until: Sat, 17 Jun 2023 08:00:00 UTC\nSHA256:\n ' +
        'c'.repeat(64) +
        '  123 main/binary-amd64/Packages.xz\n',
    );
    expect(rel.codename).toBe('bookworm');
    expect(rel.validUntil?.toISOString()).toBe('2023-06-17T08:00:00.000Z');
    expect(rel.sha256.get('main/binary-amd64/Packages.xz')).toEqual({ sha256: 'c'.repeat(64), size: 123 });
  });
});

import { describe, it, expect } from 'vitest';
import { parse } from 'yaml';
import { writeLockIntoManifest, LOCK_COMMENT } from '../../src/lock/write.js';
import type { Lock } from '../../src/manifest/types.js';

const lock = (versions: string[]): Lock => ({
  version: 1,
  packages: versions.map((v, i) => ({
    name: `p${versions.length - i}`,
    version: v,
    architecture: 'amd64',
    suite: 's',
    filename: `pool/p${i}.deb`,
    sha256: String(i).repeat(64),
    size: i,
  })),
  files: [
    { src: 'z.txt', sha256: 'f'.repeat(64) },
    { src: 'a.txt', sha256: 'e'.repeat(64) },
  ],
});

describe('writeLockIntoManifest', () => {
  it('appends to a file without a trailing newline, sorted, numbers-as-strings kept strings', () => {
    const out = writeLockIntoManifest('name: x # keep', lock(['1.0', '2:1.0-1']));
    expect(out.startsWith('name: x # keep\n\n' + LOCK_COMMENT + 'lock:\n')).toBe(true);
    const v = parse(out);
    expect(v.lock.packages.map((p: { name: string; version: string }) => [p.name, p.version])).toEqual([
      ['p1', '2:1.0-1'],
      ['p2', '1.0'],
    ]);
    expect(v.lock.files.map((f: { src: string }) => f.src)).toEqual(['a.txt', 'z.txt']);
    expect(typeof v.lock.packages[1].version).toBe('string');
    expect(v.lock.packages[0].sha256).toBe('1'.repeat(64));
  });

  it('replaces a lock at the end of a file, keeping the comment above it; idempotent', () => {
    const src = 'name: x\n# my own note about the lock\nlock:\n  version: 1\n  packages: []';
    const once = writeLockIntoManifest(src, lock(['3']));
    expect(once.startsWith('name: x\n# my own note about the lock\nlock:\n  version: 1\n  packages:\n')).toBe(true);
    expect(writeLockIntoManifest(once, lock(['3']))).toBe(once);
    const changed = writeLockIntoManifest(once, lock(['4']));
    expect(changed).not.toBe(once);
    expect(parse(changed).lock.packages[0].version).toBe('4');
  });

  it('falls back to a yaml rewrite for a flow-style document, still valid', () => {
    const out = writeLockIntoManifest('{name: x, lock: {version: 1}}\n', lock(['5']));
    expect(parse(out).name).toBe('x');
    expect(parse(out).lock.packages[0].version).toBe('5');
  });
});

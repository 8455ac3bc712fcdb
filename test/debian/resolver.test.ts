import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createAptRepo, type AptRepo } from '../helpers/apt-repo.js';
import { loadSources } from '../../src/debian/repository.js';
import { Universe, resolveClosure, type ResolveRequest } from '../../src/debian/resolver.js';
import type { PackageRecord } from '../../src/debian/packages.js';
import { MkimgError } from '../../src/util/errors.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let repo: AptRepo;
let universe: Universe;
let cacheDir: string;

beforeAll(async () => {
  repo = await createAptRepo({
    suites: [
      {
        name: 'stable',
        packages: [
          { name: 'libc6', version: '2.36-9', multiArch: 'same', depends: 'libgcc-s1', priority: 'optional' },
          { name: 'libgcc-s1', version: '12.2.0-14', preDepends: 'gcc-12-base (= 12.2.0-14)' },
          { name: 'gcc-12-base', version: '12.2.0-14', multiArch: 'same' },
          { name: 'base-files', version: '12.4', essential: true, priority: 'required' },
          { name: 'libssl3', version: '3.0.11-1', depends: 'libc6 (>= 2.34)' },
          {
            name: 'app',
            version: '1.0',
            depends: 'libc6 (>= 2.36), mail-a | mail-b, pyrun:any, app-data, awk',
            recommends: 'recommended-pkg',
          },
          { name: 'app-data', version: '1.0', architecture: 'all' },
          { name: 'mail-b', version: '1', provides: 'mail-transport-agent' },
          { name: 'pyrun', version: '3.11', multiArch: 'allowed' },
          { name: 'recommended-pkg', version: '1' },
          { name: 'mawk', version: '1.3.4', provides: 'awk' },
          { name: 'tool-x', version: '1' },
          { name: 'tool-y', version: '1' },
          { name: 'uses-tool', version: '1', depends: 'tool-x | tool-y' },
          { name: 'foo-old', version: '1', provides: 'libfoo-abi (= 1)' },
          { name: 'foo-new', version: '2', provides: 'libfoo-abi (= 2)' },
          { name: 'foo-unversioned', version: '3', provides: 'libfoo-abi' },
          { name: 'needs-abi', version: '1', depends: 'libfoo-abi (>= 2)' },
          { name: 'broken-top', version: '1', depends: 'broken-mid' },
          { name: 'broken-mid', version: '1', depends: 'libssl3 (>= 9.0)' },
          { name: 'needs-any', version: '1', depends: 'libc6:any' },
          { name: 'c1', version: '1', conflicts: 'c2' },
          { name: 'c2', version: '1' },
          { name: 'self-conflict', version: '1', provides: 'mail-transport-agent', conflicts: 'mail-transport-agent' },
          { name: 'archdep', version: '1', indexFields: { Depends: 'only-i386 [i386], tool-x [amd64]' } },
        ],
      },
      {
        name: 'stable-updates',
        packages: [{ name: 'libssl3', version: '3.0.13-1', depends: 'libc6 (>= 2.34)' }],
      },
      {
        name: 'stable-copy',
        packages: [
          { name: 'tool-x', version: '1' },
          { name: 'tool-y', version: '2' },
        ],
      },
      {
        name: 'backports',
        notAutomatic: true,
        packages: [{ name: 'app', version: '2.0', depends: 'libc6' }],
      },
    ],
  });
  cacheDir = mkdtempSync(join(tmpdir(), 'mkimg-cache-'));
  const { records, suites } = await loadSources(
    [repo.source(['stable', 'stable-updates']), repo.source(['stable-copy']), repo.source(['backports'])],
    { arch: 'amd64', cacheDir, aptRoot: '/nonexistent' },
  );
  expect(suites.map((s) => s.suite)).toEqual(['stable', 'stable-updates', 'stable-copy', 'backports']);
  expect(suites[0]!.release.signedBy).toHaveLength(1);
  universe = new Universe(records, 'amd64');
});

afterAll(async () => {
  await repo?.close();
  if (cacheDir) rmSync(cacheDir, { recursive: true, force: true });
});

const closure = (reqs: (string | ResolveRequest)[]) =>
  resolveClosure(
    universe,
    reqs.map((r) => (typeof r === 'string' ? { name: r } : r)),
  );
const summary = (ps: PackageRecord[]) => ps.map((p) => `${p.name}=${p.version}@${p.suite}`);

function resolveError(reqs: string[]): MkimgError {
  try {
    closure(reqs);
  } catch (e) {
    expect(e).toBeInstanceOf(MkimgError);
    expect((e as MkimgError).kind).toBe('resolve');
    return e as MkimgError;
  }
  throw new Error('expected a resolve error');
}

describe('resolver against a signed test repository', () => {
  it('follows Depends and Pre-Depends, alternatives, :any, virtuals; no Recommends, no Essential', () => {
    expect(summary(closure(['app']))).toEqual([
      'app=1.0@stable',
      'app-data=1.0@stable',
      'gcc-12-base=12.2.0-14@stable',
      'libc6=2.36-9@stable',
      'libgcc-s1=12.2.0-14@stable',
      'mail-b=1@stable',
      'mawk=1.3.4@stable',
      'pyrun=3.11@stable',
    ]);
  });

  it('takes the highest version across suites, ties to the earlier source', () => {
    expect(summary(closure(['libssl3']))).toContain('libssl3=3.0.13-1@stable-updates');
    expect(summary(closure(['tool-x']))).toEqual(['tool-x=1@stable']);
    expect(summary(closure(['tool-y']))).toEqual(['tool-y=2@stable-copy']);
  });

  it('honours an exact version pin and keeps NotAutomatic suites out unless asked', () => {
    expect(summary(closure(['libssl3']))).not.toContain('libssl3=3.0.11-1@stable');
    expect(summary(closure([{ name: 'libssl3', version: '3.0.11-1' }]))).toContain('libssl3=3.0.11-1@stable');
    expect(summary(closure(['app']))[0]).toBe('app=1.0@stable');
    expect(summary(closure([{ name: 'app', version: '2.0' }]))[0]).toBe('app=2.0@backports');
  });

  it('prefers an alternative that is already chosen', () => {
    expect(summary(closure(['uses-tool']))).toEqual(['tool-x=1@stable', 'uses-tool=1@stable']);
    expect(summary(closure(['uses-tool', 'tool-y']))).toEqual(['tool-y=2@stable-copy', 'uses-tool=1@stable']);
  });

  it('satisfies a versioned dependency through versioned Provides only', () => {
    expect(summary(closure(['needs-abi']))).toEqual(['foo-new=2@stable', 'needs-abi=1@stable']);
  });

  it('applies [arch] restrictions', () => {
    expect(summary(closure(['archdep']))).toEqual(['archdep=1@stable', 'tool-x=1@stable']);
  });

  it('names the chain of an unsatisfiable dependency', () => {
    const e = resolveError(['broken-top']);
    expect(e.message).toMatch(
      /^broken-top → broken-mid → libssl3 \(>= 9\.0\) → no candidate \(available: 3\.0\.13-1 from stable-updates, 3\.0\.11-1 from stable\)/,
    );
  });

  it('refuses :any on a package that is not Multi-Arch: allowed', () => {
    expect(resolveError(['needs-any']).message).toMatch(/needs-any → libc6:any/);
  });

  it('reports conflicts, but not a package conflicting with what it provides itself', () => {
    expect(resolveError(['c1', 'c2']).message).toMatch(/conflict: c1 1 .* Conflicts c2/);
    expect(summary(closure(['self-conflict']))).toEqual(['self-conflict=1@stable']);
  });

  it('refuses unknown packages, unknown versions and bare virtual requests', () => {
    expect(resolveError(['no-such-pkg']).message).toMatch(/no-such-pkg: no such package/);
    expect(() => closure([{ name: 'libssl3', version: '9' }])).toThrow(/libssl3=9: no such version/);
    expect(resolveError(['awk']).message).toMatch(/awk is a virtual package, provided by: mawk/);
  });

  it('is deterministic and sorted by name', () => {
    const a = summary(closure(['app', 'libssl3', 'uses-tool']));
    const b = summary(closure(['uses-tool', 'libssl3', 'app']));
    expect(a).toEqual(b);
    const names = closure(['app', 'libssl3', 'uses-tool']).map((p) => p.name);
    expect([...names].sort()).toEqual(names);
  });
});

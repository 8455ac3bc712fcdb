/**
 * Lock only what changed: the lock records what the package resolution
 * depended on; while that is unchanged, `mkimg lock` re-pins files: inputs
 * offline (the repository is stopped and sees no request), `lock --check`
 * finds an edited input, and `build --repin` re-pins before building. The
 * same edit through each path gives the same manifest bytes and image.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAptRepo, type AptRepo } from '../helpers/apt-repo.js';
import { mkimgAsync as mkimg } from '../helpers/cli.js';

let repo: AptRepo;
let work: string;
let base: string;

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const lockSection = (path: string) => readFileSync(path, 'utf8').split('\nlock:\n')[1] ?? '';

beforeAll(async () => {
  repo = await createAptRepo({
    suites: [
      {
        name: 'local',
        packages: [
          { name: 'hello', version: '1', depends: 'libhello', files: { '/usr/bin/hello': { content: '#!/bin/sh\n' } } },
          { name: 'libhello', version: '1' },
          { name: 'extra', version: '1' },
        ],
      },
    ],
  });
  work = mkdtempSync(join(tmpdir(), 'mkimg-repin-'));
  base = join(work, 'base');
  mkdirSync(join(base, 'keys'), { recursive: true });
  mkdirSync(join(base, 'app'));
  copyFileSync(repo.keyringPath, join(base, 'keys', 'test.asc'));
  writeFileSync(join(base, 'app', 'main.txt'), 'v1\n');
  writeFileSync(
    join(base, 'manifest.yaml'),
    `apiVersion: mkimg/v1
name: repin
sourceDateEpoch: 1700000000
sources:
  - url: ${repo.url}
    suites: [local]
    keyring: keys/test.asc
packages: [hello]
files:
  - src: app/
    dest: /app
minimize: false
`,
  );
  const l = await mkimg(['lock', join(base, 'manifest.yaml'), '--cache-dir', join(work, 'cache')]);
  expect(l.code, l.stderr).toBe(0);
});

afterAll(async () => {
  await repo?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** A copy of the locked project. */
function project(name: string): string {
  const dir = join(work, name);
  cpSync(base, dir, { recursive: true });
  return join(dir, 'manifest.yaml');
}

describe('lock only what changed', () => {
  it('records the resolution digest; an edited input is found by lock --check and re-pinned offline', async () => {
    const manifest = project('offline');
    expect(lockSection(manifest)).toMatch(/^ {2}resolution: [0-9a-f]{64}$/m);
    const packagesBefore = lockSection(manifest).split('\n  files:')[0];
    writeFileSync(join(manifest, '..', 'app', 'main.txt'), 'v2\n');

    const check = await mkimg(['lock', '--check', manifest]);
    expect(check.code).toBe(11);
    expect(check.stdout).toMatch(/files: app\/ changed since it was pinned/);

    await repo.stop();
    try {
      const requests = repo.requests.length;
      const r = await mkimg(['lock', manifest, '--cache-dir', join(work, 'cache'), '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ changed: true, resolved: false, filesChanged: ['app/'] });
      const human = await mkimg(['lock', manifest, '--cache-dir', join(work, 'cache')]);
      expect(human.stdout.trim().split('\n')).toEqual([
        `${manifest}: nothing changed; packages unchanged (their sources and requests are as locked: not resolved again, no network; --full resolves)`,
      ]);
      expect(repo.requests.length).toBe(requests);
      expect(lockSection(manifest).split('\n  files:')[0]).toBe(packagesBefore);
      expect((await mkimg(['lock', '--check', manifest])).code).toBe(0);
      // --full resolves again: with the repository down that is a repository error.
      expect((await mkimg(['lock', manifest, '--full', '--cache-dir', join(work, 'cache')])).code).toBe(5);
    } finally {
      await repo.start();
    }
  });

  it('resolves again when a package request, a source or a keyring changes', async () => {
    const manifest = project('requests');
    writeFileSync(manifest, readFileSync(manifest, 'utf8').replace('packages: [hello]', 'packages: [hello, extra]'));
    const check = await mkimg(['lock', '--check', manifest]);
    expect(check.code).toBe(11);
    expect(check.stdout).toMatch(/the sources, package requests, keyrings or architectures changed/);
    const requests = repo.requests.length;
    const r = await mkimg(['lock', manifest, '--cache-dir', join(work, 'cache'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ resolved: true });
    expect(repo.requests.length).toBeGreaterThan(requests);
    expect(lockSection(manifest)).toMatch(/name: extra/);

    // A keyring with other bytes (the same key, armored again) is a change too.
    const keyed = project('keyring');
    writeFileSync(join(keyed, '..', 'keys', 'test.asc'), `${readFileSync(repo.keyringPath, 'utf8')}\n`);
    expect((await mkimg(['lock', '--check', keyed])).stdout).toMatch(/keyrings or architectures changed/);
  });

  it('the same edit through lock --full, the offline re-pin and build --repin: the same manifest and image', async () => {
    const paths = ['full', 'offline-repin', 'build-repin'].map(project);
    for (const m of paths) writeFileSync(join(m, '..', 'app', 'main.txt'), 'v3\n');
    const cache = ['--cache-dir', join(work, 'cache')];
    expect((await mkimg(['lock', paths[0]!, '--full', ...cache])).code).toBe(0);
    expect((await mkimg(['lock', paths[1]!, ...cache])).code).toBe(0);
    const images = paths.map((m) => join(m, '..', 'image.tar'));
    expect((await mkimg(['build', paths[0]!, '-o', images[0]!, ...cache])).code).toBe(0);
    expect((await mkimg(['build', paths[1]!, '-o', images[1]!, ...cache])).code).toBe(0);
    await repo.stop();
    try {
      const b = await mkimg(['build', paths[2]!, '--repin', '-o', images[2]!, ...cache]);
      expect(b.code, b.stderr).toBe(0);
      expect(b.stdout).toMatch(/^re-pinned: {7}app\/ in .*manifest.yaml \(the manifest's bytes changed/m);
    } finally {
      await repo.start();
    }
    expect(new Set(paths.map((m) => readFileSync(m, 'utf8'))).size).toBe(1);
    expect(new Set(images.map(sha256)).size).toBe(1);
  });

  it('build --repin refuses a signature requirement, and package changes it cannot re-pin offline', async () => {
    const manifest = project('refusals');
    const signed = await mkimg(['build', manifest, '--repin', '--require-signature', '--keyring', repo.keyringPath]);
    expect(signed.code).toBe(2);
    expect(signed.stderr).toMatch(/--repin rewrites the manifest/);
    writeFileSync(manifest, readFileSync(manifest, 'utf8').replace('packages: [hello]', 'packages: [hello, extra]'));
    const before = readFileSync(manifest, 'utf8');
    const r = await mkimg(['build', manifest, '--repin', '-o', join(work, 'never.tar')]);
    expect(r.code).toBe(11);
    expect(r.stderr).toMatch(/only files: inputs can be re-pinned during a build/);
    expect(readFileSync(manifest, 'utf8')).toBe(before);
  });
});

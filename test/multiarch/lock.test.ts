/**
 * A manifest with several architectures: one closure per architecture,
 * pinned from a real signed repository serving binary-amd64 and
 * binary-arm64, kept in one lock section, stable on relock, checked offline.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAptRepo, type AptRepo } from '../helpers/apt-repo.js';
import { loadManifest } from '../../src/manifest/load.js';
import { resolveLock } from '../../src/lock/resolve.js';
import { writeLockIntoManifest } from '../../src/lock/write.js';
import { lockIsCurrent } from '../../src/lock/check.js';
import { forArchitecture, platformToArchitecture } from '../../src/manifest/platform.js';
import { rejection } from '../helpers/errors.js';

let repo: AptRepo;
let work: string;

beforeAll(async () => {
  repo = await createAptRepo({
    architectures: ['amd64', 'arm64'],
    suites: [
      {
        name: 'local',
        packages: [
          { name: 'app', version: '1', depends: 'libc6', architecture: 'amd64' },
          { name: 'app', version: '1', depends: 'libc6', architecture: 'arm64' },
          { name: 'libc6', version: '2.36-9', architecture: 'amd64' },
          { name: 'libc6', version: '2.36-9', architecture: 'arm64' },
          { name: 'tzdata', version: '2024a-1', architecture: 'all' },
          { name: 'amd64-only', version: '1', architecture: 'amd64' },
        ],
      },
    ],
  });
  work = mkdtempSync(join(tmpdir(), 'mkimg-multiarch-'));
  mkdirSync(join(work, 'keys'));
  copyFileSync(repo.keyringPath, join(work, 'keys', 'test.asc'));
});

afterAll(async () => {
  await repo?.close();
  rmSync(work, { recursive: true, force: true });
});

function manifest(name: string, packages: string[], arch = 'architectures: [amd64, arm64]'): string {
  const path = join(work, `${name}.yaml`);
  writeFileSync(
    path,
    `apiVersion: mkimg/v1
name: multi
sourceDateEpoch: 1700000000
${arch}
sources:
  - url: ${repo.url}
    suites: [local]
    keyring: keys/test.asc
packages:
${packages.map((p) => `  - ${p}`).join('\n')}
minimize: false
`,
  );
  return path;
}

async function lock(path: string): Promise<string> {
  const m = loadManifest(path);
  const l = await resolveLock(m, { cacheDir: join(work, 'cache') });
  const text = writeLockIntoManifest(readFileSync(path, 'utf8'), l);
  writeFileSync(path, text);
  return text;
}

describe('multi-architecture locks', () => {
  it('pins one closure per architecture, each with its own .debs and the shared all package, stable on relock', async () => {
    const path = manifest('two', ['app', 'tzdata']);
    const text = await lock(path);
    const m = loadManifest(path);
    expect(m.architectures).toEqual(['amd64', 'arm64']);
    expect(lockIsCurrent(m)).toEqual({ ok: true, problems: [] });
    for (const arch of ['amd64', 'arm64']) {
      const view = forArchitecture(m, arch);
      expect(view.architecture).toBe(arch);
      expect(view.lock!.packages.map((p) => `${p.name}:${p.architecture}`)).toEqual([
        `app:${arch}`,
        `libc6:${arch}`,
        'tzdata:all',
      ]);
    }
    expect(m.lock!.architectures!.amd64!.packages[0]!.sha256).not.toBe(
      m.lock!.architectures!.arm64!.packages[0]!.sha256,
    );
    expect(m.lock!.packages).toEqual([]);
    // Relocking an unchanged world changes no byte.
    expect(await lock(path)).toBe(text);
  });

  it('names a package one architecture lacks, and takes it where the manifest limits it', async () => {
    const bad = manifest('missing', ['app', 'amd64-only']);
    const err = await rejection(resolveLock(loadManifest(bad), { cacheDir: join(work, 'cache') }));
    expect(err.kind).toBe('resolve');
    expect(err.message).toMatch(/^arm64: .*amd64-only/);
    expect(err.hint).toContain('architectures: [amd64]');

    const ok = manifest('limited', ['app', '{ name: amd64-only, architectures: [amd64] }']);
    await lock(ok);
    const m = loadManifest(ok);
    expect(forArchitecture(m, 'amd64').lock!.packages.map((p) => p.name)).toContain('amd64-only');
    expect(forArchitecture(m, 'arm64').lock!.packages.map((p) => p.name)).not.toContain('amd64-only');
    expect(lockIsCurrent(m).ok).toBe(true);
  });

  it('finds a lock stale when it pins one architecture only, or another one', async () => {
    const one = manifest('one', ['app'], 'architecture: amd64');
    const text = await lock(one);
    // The same pins under a manifest that now builds two architectures.
    writeFileSync(one, text.replace('architecture: amd64', 'architectures: [amd64, arm64]'));
    const status = lockIsCurrent(loadManifest(one));
    expect(status.ok).toBe(false);
    expect(status.problems.join('\n')).toMatch(/builds several|no pins for this architecture/);

    const two = manifest('two-then-one', ['app']);
    const twoText = await lock(two);
    writeFileSync(two, twoText.replace('architectures: [amd64, arm64]', 'architectures: [amd64]'));
    expect(lockIsCurrent(loadManifest(two)).problems.join('\n')).toContain('the lock pins several architectures');
  });

  it('refuses an unknown architecture, both spellings at once, and an unknown --platform', async () => {
    const unknown = manifest('unknown', ['app'], 'architectures: [amd64, sparc]');
    expect((await rejection(Promise.resolve().then(() => loadManifest(unknown)))).kind).toBe('manifest');
    const both = manifest('both', ['app'], 'architecture: amd64\narchitectures: [amd64]');
    expect((await rejection(Promise.resolve().then(() => loadManifest(both)))).message).toContain('not both');
    expect(platformToArchitecture('linux/arm64/v8')).toBe('arm64');
    expect(platformToArchitecture('arm64')).toBe('arm64');
    expect(await rejection(Promise.resolve().then(() => platformToArchitecture('linux/mips')))).toMatchObject({
      kind: 'usage',
    });
    const m = loadManifest(manifest('pick', ['app']));
    expect(await rejection(Promise.resolve().then(() => forArchitecture(m, 'armhf')))).toMatchObject({ kind: 'usage' });
  });
});

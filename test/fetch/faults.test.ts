/**
 * The machine failing under mkimg: a full disk while fetching into the cache,
 * a cache folder that is a file, read-only, or holds a folder where a blob
 * belongs. Each is an 'environment' error (exit 15) with one line, never a
 * hang, a silent success or a stack trace; temporaries of dead runs are
 * collected. Real tmpfs mounts (as root) for the full and read-only disks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAptRepo, type AptRepo } from '../helpers/apt-repo.js';
import { fetchPinnedDebs } from '../../src/debian/fetch-debs.js';
import type { LockedPackage } from '../../src/manifest/types.js';
import { rejection } from '../helpers/errors.js';

const isRoot = process.getuid?.() === 0;
let repo: AptRepo;
let work: string;
const mounts: string[] = [];

function tmpfs(dir: string, opts: string): void {
  mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', opts, 'tmpfs', dir]);
  mounts.push(dir);
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'mkimg-faults-'));
  repo = await createAptRepo({
    suites: [
      {
        name: 'stable',
        packages: [{ name: 'big', version: '1.0', files: { '/usr/share/big/data': randomBytes(1 << 20) } }],
      },
    ],
  });
}, 120_000);

afterAll(async () => {
  for (const m of mounts.reverse()) spawnSync('umount', [m]);
  await repo?.close();
  rmSync(work, { recursive: true, force: true });
});

const pin = (name: string): LockedPackage => {
  const d = repo.deb(name);
  return {
    name,
    version: d.version,
    architecture: d.architecture,
    suite: 'stable',
    filename: d.filename,
    sha256: d.sha256,
    size: d.size,
  };
};
const fetchInto = (cacheDir: string) =>
  fetchPinnedDebs([pin('big')], { sources: [repo.source('stable')], cacheDir, aptRoot: '/nonexistent', env: {} });

/** A pid that was a process a moment ago and is gone now. */
function deadPid(): number {
  const r = spawnSync('sh', ['-c', 'echo $$']);
  return Number(r.stdout.toString().trim());
}

describe('fetching into the cache when the machine fails', () => {
  it.runIf(isRoot)(
    'a full disk fails the fetch with an environment error and leaves no temporary',
    async () => {
      const cache = join(work, 'full');
      tmpfs(cache, 'size=256k');
      const e = await rejection(fetchInto(cache));
      expect(e.kind).toBe('environment');
      expect(e.message).toMatch(/no space left on the device \(ENOSPC/);
      expect(e.message).toMatch(/big_1\.0_amd64\.deb|pool/);
      expect(readdirSync(join(cache, 'blobs', 'sha256'))).toEqual([]);
    },
    60_000,
  );

  it.runIf(isRoot)('a read-only cache folder is an environment error', async () => {
    const cache = join(work, 'ro');
    tmpfs(cache, 'size=1m,ro');
    const e = await rejection(fetchInto(cache));
    expect(e.kind).toBe('environment');
    expect(e.message).toMatch(/read-only \(EROFS/);
  });

  it.runIf(!isRoot)('an unwritable cache folder is an environment error', async () => {
    const cache = join(work, 'unwritable');
    mkdirSync(cache);
    chmodSync(cache, 0o555);
    const e = await rejection(fetchInto(cache));
    expect(e.kind).toBe('environment');
    expect(e.message).toMatch(/permission denied \(EACCES/);
  });

  it('a cache folder that is a file is an environment error naming it', async () => {
    const cache = join(work, 'isfile');
    writeFileSync(cache, 'not a folder');
    const e = await rejection(fetchInto(cache));
    expect(e.kind).toBe('environment');
    expect(e.message).toMatch(/the cache folder .*isfile cannot be used: .* is a file/);
  });

  it('a folder where the blob belongs is an environment error, and the folder is left alone', async () => {
    const cache = join(work, 'dirblob');
    const blob = join(cache, 'blobs', 'sha256', repo.deb('big').sha256);
    mkdirSync(join(blob, 'inside'), { recursive: true });
    const e = await rejection(fetchInto(cache));
    expect(e.kind).toBe('environment');
    expect(e.message).toMatch(/the cache holds something other than a file where this entry belongs/);
    expect(existsSync(join(blob, 'inside'))).toBe(true);
  });

  it('temporaries of dead runs are collected; those of live processes are kept', async () => {
    const cache = join(work, 'stale');
    const blobs = join(cache, 'blobs', 'sha256');
    mkdirSync(blobs, { recursive: true });
    const dead = `.tmp-${deadPid()}-0123456789ab`;
    const live = `.tmp-1-0123456789ab`; // pid 1 is always alive
    writeFileSync(join(blobs, dead), 'partial');
    writeFileSync(join(blobs, live), 'partial');
    await fetchInto(cache);
    expect(readdirSync(blobs).sort()).toEqual([live, repo.deb('big').sha256].sort());
  });
});

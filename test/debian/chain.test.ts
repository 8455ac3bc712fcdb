import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAptRepo, type AptRepo } from '../helpers/apt-repo.js';
import { loadSuite } from '../../src/debian/repository.js';
import { rejection } from '../helpers/errors.js';

let repo: AptRepo;
let cacheDir: string;
const pkgs = [{ name: 'hello', version: '1.0' }];

beforeAll(async () => {
  repo = await createAptRepo({
    suites: [
      { name: 'good', packages: pkgs },
      { name: 'tampered', packages: [{ name: 'other', version: '1' }] }, // own index bytes, so the cache cannot answer
      { name: 'wrongkey', packages: pkgs, sign: 'other' },
      { name: 'unsigned', packages: pkgs, sign: 'none' },
      { name: 'expired', packages: pkgs, sign: 'expired' },
      { name: 'revoked', packages: pkgs, sign: 'revoked' },
      { name: 'stale', packages: pkgs, validUntil: new Date('2020-01-01T00:00:00Z') },
      { name: 'flaky', packages: pkgs },
    ],
  });
  repo.tamperPackages('tampered');
  cacheDir = mkdtempSync(join(tmpdir(), 'mkimg-cache-'));
});

afterAll(async () => {
  await repo?.close();
  if (cacheDir) rmSync(cacheDir, { recursive: true, force: true });
});

const load = (suite: string, extra: Record<string, unknown> = {}) =>
  loadSuite(repo.source(suite, extra), suite, 0, { arch: 'amd64', cacheDir, aptRoot: '/nonexistent' });

describe('InRelease → Packages chain of trust', () => {
  it('accepts a good signature and checks the indexes', async () => {
    const { records, info } = await load('good');
    expect(records.map((r) => `${r.name} ${r.version} ${r.sha256}`)).toEqual([`hello 1.0 ${repo.deb('hello').sha256}`]);
    expect(info.release.signedBy).toHaveLength(1);
    expect(info.mirrorFrom).toBe('manifest url');
    // the verified index is now in the cache, by its sha256
    expect(readdirSync(join(cacheDir, 'blobs', 'sha256')).filter((n) => !n.startsWith('.')).length).toBeGreaterThan(0);
  });

  it('refuses a Packages file changed after signing', async () => {
    const e = await rejection(load('tampered'));
    expect(e.kind).toBe('repository');
    expect(e.message).toMatch(
      /dists\/tampered\/main\/binary-amd64\/Packages\.xz does not match the signed Release of suite "tampered"/,
    );
  });

  it('refuses a signature by a key not in the keyring', async () => {
    const e = await rejection(load('wrongkey'));
    expect(e.kind).toBe('repository');
    expect(e.message).toMatch(
      /InRelease of suite "wrongkey" \(http:\/\/127\.0\.0\.1:\d+\/dists\/wrongkey\/InRelease\): no valid signature/,
    );
    // and accepts it with the right keyring
    const ok = await load('wrongkey', { keyring: repo.otherKeyringPath });
    expect(ok.records).toHaveLength(1);
  });

  it('refuses an unsigned repository unless allowUnsigned', async () => {
    const e = await rejection(load('unsigned'));
    expect(e.kind).toBe('repository');
    expect(e.message).toMatch(/unsigned|InRelease not found/);
    expect(e.message).toContain('"unsigned"');
    const ok = await load('unsigned', { allowUnsigned: true, keyring: undefined });
    expect(ok.records.map((r) => r.name)).toEqual(['hello']);
    expect(ok.info.release.signedBy).toEqual([]);
  });

  it('refuses signatures by expired or revoked keys', async () => {
    for (const suite of ['expired', 'revoked']) {
      const keyring = join(repo.dir, '..', `${suite}.asc`);
      const e = await rejection(load(suite, { keyring }));
      expect(e.kind, suite).toBe('repository');
      expect(e.message, suite).toMatch(new RegExp(`InRelease of suite "${suite}".*no valid signature`));
    }
  });

  it('refuses a Release past its Valid-Until', async () => {
    const e = await rejection(load('stale'));
    expect(e.message).toMatch(/expired at 2020-01-01T00:00:00.000Z \(Valid-Until\)/);
  });

  it('refuses a Release served under another suite name', async () => {
    repo.serve(
      '/dists/flaky/InRelease',
      Buffer.from(await (await fetch(`${repo.url}/dists/good/InRelease`)).arrayBuffer()),
    );
    const e = await rejection(load('flaky'));
    expect(e.message).toMatch(/is for suite "good".*not "flaky"/);
    repo.serve('/dists/flaky/InRelease', null);
    const gone = await rejection(load('flaky'));
    expect(gone.message).toMatch(/InRelease not found \(HTTP 404\)/);
  });

  it('retries a 5xx answer', async () => {
    repo.fail('/dists/good/InRelease', 2, 503);
    const { records } = await load('good');
    expect(records).toHaveLength(1);
    repo.fail('/dists/good/InRelease', 5, 500);
    const e = await rejection(load('good'));
    expect(e.message).toMatch(/HTTP 500 \(after 3 attempts\)/);
  });
});

/**
 * Locks python3.11-minimal against the host's real Debian mirror (from its apt
 * config) and compares the closure with apt's own candidates. Runs only when
 * that mirror answers; otherwise it is skipped, saying so in its name.
 */
import { describe, it, expect, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readAptSources } from '../../src/debian/mirrors.js';
import { loadManifest } from '../../src/manifest/load.js';
import { resolveLock } from '../../src/lock/resolve.js';
import { fetchPinnedDebs } from '../../src/debian/fetch-debs.js';

const KEYRING = resolve(__dirname, '../../keys/debian-archive-bookworm.asc');

async function probe(): Promise<string | undefined> {
  const entry = readAptSources('/').find((e) => e.suites.includes('bookworm'));
  if (!entry) return undefined;
  try {
    const res = await fetch(`${entry.uri}/dists/bookworm/InRelease`, {
      method: 'HEAD',
      signal: AbortSignal.timeout(5000),
    });
    return res.ok ? entry.uri : undefined;
  } catch {
    return undefined;
  }
}

const mirror = await probe();
if (!mirror) console.warn('debian-live: SKIPPED: the host apt config has no answering bookworm mirror');

const work = mkdtempSync(join(tmpdir(), 'mkimg-live-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const EXPECTED = [
  'gcc-12-base',
  'libc6',
  'libexpat1',
  'libgcc-s1',
  'libpython3.11-minimal',
  'libssl3',
  'python3.11-minimal',
  'zlib1g',
];

function aptCandidates(names: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  const text = execFileSync('apt-cache', ['policy', ...names], { encoding: 'utf8' });
  let cur = '';
  for (const line of text.split('\n')) {
    const m = /^(\S+):$/.exec(line);
    if (m) cur = m[1]!;
    const c = /^\s+Candidate: (\S+)/.exec(line);
    if (c && cur) out[cur] = c[1]!;
  }
  return out;
}

describe('real Debian bookworm', () => {
  it.skipIf(!mirror)(
    `locks python3.11-minimal like apt resolves it${mirror ? '' : ' (SKIPPED: host Debian mirror not reachable)'}`,
    async () => {
      const path = join(work, 'manifest.yaml');
      writeFileSync(
        path,
        `apiVersion: mkimg/v1
name: python
sourceDateEpoch: 1700000000
sources:
  - suites: [bookworm, bookworm-updates]
    components: [main]
    keyring: ${KEYRING}
  - suites: [bookworm-security]
    components: [main]
    keyring: ${KEYRING}
packages:
  - python3.11-minimal
minimize: false
`,
      );
      const cacheDir = join(work, 'cache');
      const lock = await resolveLock(loadManifest(path), { cacheDir });
      expect(lock.packages.map((p) => p.name)).toEqual(EXPECTED);
      const apt = aptCandidates(EXPECTED);
      expect(Object.fromEntries(lock.packages.map((p) => [p.name, p.version]))).toEqual(apt);
      for (const p of lock.packages) {
        expect(p.suite).toMatch(/^bookworm(-updates|-security)?$/);
        expect(p.filename).toMatch(/^pool\/(updates\/)?main\//);
      }
      // the pins hold against the mirror's bytes
      const debs = await fetchPinnedDebs(lock.packages, { sources: loadManifest(path).sources, cacheDir });
      for (const p of lock.packages) {
        expect(
          createHash('sha256')
            .update(readFileSync(debs.get(p.name)!))
            .digest('hex'),
        ).toBe(p.sha256);
      }
    },
    300_000,
  );
});

/**
 * Test helpers for system files, status.d, SBOM and inspect: real Debian
 * packages fetched with the host's `apt-get download` (cached by name across
 * test files), unpacked with the real stage code into a fresh staging root.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Manifest } from '../../src/manifest/types.js';
import type { StagingRoot } from '../../src/stage/types.js';
import { createStagingRoot } from '../../src/stage/root.js';
import { unpackDeb } from '../../src/debian/unpack.js';

const CACHE = join(tmpdir(), 'mkimg-test-debs-system');

export interface DebFile {
  name: string;
  path: string;
  sha256: string;
}

/**
 * Download the named packages (host apt sources, current candidate version)
 * into a shared cache. Returns undefined (and the reason) when apt-get
 * download fails, so the caller can skip with a clear message.
 */
export function aptDownload(names: string[]): { debs?: DebFile[]; reason?: string } {
  mkdirSync(CACHE, { recursive: true });
  const out: DebFile[] = [];
  for (const name of names) {
    let file = readdirSync(CACHE).find((f) => f.startsWith(name + '_') && f.endsWith('.deb'));
    if (!file) {
      const tmp = mkdtempSync(join(CACHE, '.dl-'));
      const r = spawnSync('apt-get', ['download', name], { cwd: tmp, encoding: 'utf8', timeout: 120_000 });
      const got = existsSync(tmp) ? readdirSync(tmp).filter((f) => f.endsWith('.deb')) : [];
      if (r.status !== 0 || got.length !== 1) {
        rmSync(tmp, { recursive: true, force: true });
        return {
          reason: `apt-get download ${name} failed (exit ${r.status}): ${(r.stderr ?? '').trim().split('\n').pop()}`,
        };
      }
      file = got[0];
      renameSync(join(tmp, file), join(CACHE, file));
      rmSync(tmp, { recursive: true, force: true });
    }
    const path = join(CACHE, file);
    out.push({ name, path, sha256: createHash('sha256').update(readFileSync(path)).digest('hex') });
  }
  return { debs: out };
}

export interface TestRoot {
  root: StagingRoot;
  /** Temp directory holding the root (and anything else the test puts there). */
  tmp: string;
  cleanup: () => void;
}

export async function stagedRoot(debs: DebFile[]): Promise<TestRoot> {
  const tmp = mkdtempSync(join(tmpdir(), 'mkimg-system-test-'));
  const root = await createStagingRoot(join(tmp, 'root'));
  for (const d of debs) await unpackDeb(root, d.path, d.sha256);
  return { root, tmp, cleanup: () => rmSync(tmp, { recursive: true, force: true }) };
}

export function testManifest(over: Partial<Manifest> = {}): Manifest {
  const bytes = Buffer.from('apiVersion: mkimg/v1\nname: test\n');
  return {
    apiVersion: 'mkimg/v1',
    name: 'test',
    tag: 'latest',
    architecture: 'amd64',
    architectures: [over.architecture ?? 'amd64'],
    sourceDateEpoch: 1700000000,
    sources: [
      { suites: ['bookworm', 'bookworm-updates', 'bookworm-security'], components: ['main'], allowUnsigned: false },
    ],
    packages: [],
    files: [],
    accounts: { groups: [], users: [] },
    config: { env: {}, labels: {}, exposedPorts: [] },
    minimize: false,
    layering: { strategy: 'origin', budget: 16 },
    bytecode: true,
    compression: 'gzip',
    variants: [],
    origin: {
      path: '/nonexistent/manifest.yaml',
      dir: '/nonexistent',
      bytes,
      sha256: createHash('sha256').update(bytes).digest('hex'),
    },
    ...over,
  };
}

/** Run a command, returning stdout; throws with stderr on failure. */
export function run(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {},
): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], ...opts });
}

/** A guard for tests that need a fixture: while `ready()` is false it skips the test, saying why (`reason()`), and returns false. */
export function skipUnless(ready: () => boolean, reason: () => string): (ctx: { skip: () => void }) => boolean {
  return (ctx) => {
    if (!ready()) {
      console.warn(`skipped: ${reason()}`);
      ctx.skip();
      return false;
    }
    return true;
  };
}

import { execFileSync } from 'node:child_process';
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { Command } from 'commander';
import { createAptRepo, type AptRepo } from '../helpers/apt-repo.js';
import { loadManifest } from '../../src/manifest/load.js';
import { resolveLock } from '../../src/lock/resolve.js';
import { writeLockIntoManifest } from '../../src/lock/write.js';
import { lockIsCurrent } from '../../src/lock/check.js';
import { registerLock } from '../../src/cli/commands/lock.js';
import { EXIT_CODES, MkimgError } from '../../src/util/errors.js';
import { rejection } from '../helpers/errors.js';
import { mkimg } from '../helpers/cli.js';

let repo: AptRepo;
let work: string;
let cacheDir: string;

beforeAll(async () => {
  repo = await createAptRepo({
    suites: [
      {
        name: 'local',
        packages: [
          { name: 'hello', version: '2.10-3', depends: 'libc6 (>= 2.34)', compression: 'xz' },
          { name: 'libc6', version: '2.36-9+deb12u4', depends: 'libgcc-s1', compression: 'zstd' },
          { name: 'libgcc-s1', version: '12.2.0-14' },
          { name: 'curl', version: '7.88.1-10', depends: 'libc6, libcurl4 (= 7.88.1-10)' },
          { name: 'libcurl4', version: '7.88.1-10', depends: 'libc6' },
          { name: 'needs-mta', version: '1', depends: 'mta-virtual' },
        ],
      },
      // not named by the manifests' sources: its .deb serves as a local file
      { name: 'extra', packages: [{ name: 'localtool', version: '1', depends: 'hello', provides: 'mta-virtual' }] },
    ],
  });
});

afterAll(async () => {
  await repo?.close();
});

afterEach(() => {
  if (work) rmSync(work, { recursive: true, force: true });
  if (cacheDir) rmSync(cacheDir, { recursive: true, force: true });
});

const MANIFEST = (packages: string[], extra = '') => `# My image: comments and odd formatting must survive locking.
apiVersion: mkimg/v1
name:   hello   # trailing comment
sourceDateEpoch: 1700000000
sources:
  - url: ${repo.url}
    suites: [local]      # flow style stays flow style
    components:
    - main
    keyring: keys/test.asc
packages:
${packages.map((p) => `  - ${p}`).join('\n')}
files:
  - src: ./data/hello.txt
    dest: /etc/hello.txt
minimize: false
${extra}`;

function setup(packages: string[], extra = ''): string {
  work = mkdtempSync(join(tmpdir(), 'mkimg-lock-'));
  cacheDir = join(work, 'cache');
  mkdirSync(join(work, 'keys'));
  mkdirSync(join(work, 'data'));
  copyFileSync(repo.keyringPath, join(work, 'keys', 'test.asc'));
  writeFileSync(join(work, 'data', 'hello.txt'), 'hello\n');
  const path = join(work, 'manifest.yaml');
  writeFileSync(path, MANIFEST(packages, extra));
  return path;
}

async function lockFile(path: string): Promise<string> {
  const m = loadManifest(path);
  const lock = await resolveLock(m, { cacheDir, aptRoot: '/nonexistent', env: {} });
  const text = writeLockIntoManifest(m.origin.bytes.toString('utf8'), lock);
  writeFileSync(path, text);
  return text;
}

describe('mkimg lock', () => {
  it('pins the closure and the files, keeps everything else byte for byte, and relocks to the same bytes', async () => {
    const path = setup(['hello']);
    const original = readFileSync(path, 'utf8');
    expect(lockIsCurrent(loadManifest(path))).toEqual({ ok: false, problems: ['the manifest has no lock: section'] });
    const first = await lockFile(path);
    expect(first.startsWith(original)).toBe(true);
    const m = loadManifest(path);
    expect(m.lock!.packages.map((p) => `${p.name}=${p.version}`)).toEqual([
      'hello=2.10-3',
      'libc6=2.36-9+deb12u4',
      'libgcc-s1=12.2.0-14',
    ]);
    const hello = m.lock!.packages[0]!;
    // dataSha256: the decompressed data member, exactly what dpkg-deb --fsys-tarfile prints
    const fsys = execFileSync('dpkg-deb', ['--fsys-tarfile', repo.deb('hello').path], { maxBuffer: 1 << 26 });
    expect(hello).toEqual({
      name: 'hello',
      version: '2.10-3',
      architecture: 'amd64',
      suite: 'local',
      filename: repo.deb('hello').filename,
      size: repo.deb('hello').size,
      sha256: repo.deb('hello').sha256,
      dataSha256: createHash('sha256').update(fsys).digest('hex'),
    });
    for (const p of m.lock!.packages) expect(p.dataSha256, p.name).toMatch(/^[0-9a-f]{64}$/);
    expect(m.lock!.files).toEqual([
      { src: './data/hello.txt', sha256: createHash('sha256').update('hello\n').digest('hex') },
    ]);
    expect(m.files[0]!.sha256).toBe(m.lock!.files[0]!.sha256);
    expect(first).not.toContain(repo.url.replace('http://', '') + '/pool'); // the lock records suites, not mirrors
    expect(lockIsCurrent(m)).toEqual({ ok: true, problems: [] });
    const second = await lockFile(path);
    expect(second).toBe(first);
  });

  it('fills the data cache under the pinned names; a build uses it; a hand-edited data pin fails the build (exit 4, nothing written)', async () => {
    const path = setup(['hello']);
    await lockFile(path);
    const m = loadManifest(path);
    // xz and zstd archives are kept decompressed (gzip is cheap to decompress again)
    const kept = m.lock!.packages.filter((p) => p.name !== 'libgcc-s1');
    expect(readdirSync(join(cacheDir, 'data', 'sha256')).sort()).toEqual(
      kept.map((p) => `${p.sha256}.${p.dataSha256}.tar`).sort(),
    );
    const out = join(work, 'out');
    mkdirSync(out);
    const ok = mkimg(['build', path, '-o', join(out, 'good.tar'), '--cache-dir', cacheDir, '--json']);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    const hello = m.lock!.packages.find((p) => p.name === 'hello')!;
    writeFileSync(
      path,
      readFileSync(path, 'utf8').replace(`dataSha256: ${hello.dataSha256}`, `dataSha256: "${'0'.repeat(64)}"`),
    );
    const bad = mkimg(['build', path, '-o', join(out, 'bad.tar'), '--cache-dir', cacheDir]);
    expect(bad.code).toBe(4);
    expect(bad.stderr).toMatch(
      new RegExp(
        `hello 2\\.10-3: the data archive of \\S+ decompresses to sha256 ${hello.dataSha256}, but the lock pins 0{64}`,
      ),
    );
    expect(readdirSync(out)).toEqual(['good.tar']);
  });

  it('a .deb the mirror serves with other bytes than its index pins stops the lock (input, exit 4), a missing one too (repository, exit 5); nothing is written', async () => {
    const path = setup(['hello']);
    const before = readFileSync(path, 'utf8');
    const pool = '/' + repo.deb('libgcc-s1').filename;
    try {
      repo.serve(pool, Buffer.from('not the package'));
      const changed = await rejection(lockFile(path));
      expect(changed.kind).toBe('input');
      expect(EXIT_CODES[changed.kind]).toBe(4);
      expect(changed.message).toMatch(
        /libgcc-s1 12\.2\.0-14: .* served 15 bytes with sha256 [0-9a-f]{64}, but the lock pins/,
      );
      repo.serve(pool, null);
      const gone = await rejection(lockFile(path));
      expect(gone.kind).toBe('repository');
      expect(EXIT_CODES[gone.kind]).toBe(5);
      expect(gone.message).toMatch(/libgcc-s1 .*HTTP 404/);
    } finally {
      repo.serve(pool, readFileSync(repo.deb('libgcc-s1').path));
    }
    expect(readFileSync(path, 'utf8')).toBe(before);
  });

  it('replaces an existing lock in the middle of the file and leaves the rest alone', async () => {
    const path = setup(
      ['hello'],
      'lock:\n  version: 1\n  packages: []\n\n# after the lock\nconfig:\n  cmd: [/bin/true]   # keep me\n',
    );
    const before = readFileSync(path, 'utf8');
    const text = await lockFile(path);
    const head = before.slice(0, before.indexOf('lock:'));
    const tail = before.slice(before.indexOf('\n\n# after the lock'));
    expect(text.startsWith(head)).toBe(true);
    expect(text.endsWith(tail)).toBe(true);
    expect(loadManifest(path).lock!.packages).toHaveLength(3);
    expect(await lockFile(path)).toBe(text);
  });

  it('reports a stale lock: a new request, a version pin that differs', async () => {
    const path = setup(['hello']);
    const locked = await lockFile(path);
    writeFileSync(path, locked.replace('  - hello\n', '  - hello\n  - curl\n  - libc6=2.36-9\n'));
    const st = lockIsCurrent(loadManifest(path));
    expect(st.ok).toBe(false);
    expect(st.problems).toEqual([
      'curl is requested but not in the lock',
      'libc6=2.36-9 is requested but the lock pins 2.36-9+deb12u4',
    ]);
    // a pin for another architecture, from a suite no source names, a files: input without a pin
    writeFileSync(
      path,
      locked
        .replace(/(name: hello\n\s+version: \S+\n\s+architecture:) amd64/, '$1 arm64')
        .replace(/(name: libgcc-s1\n\s+version: \S+\n\s+architecture: amd64\n\s+suite:) local/, '$1 elsewhere')
        .replace('src: ./data/hello.txt\n      sha256', 'src: ./data/other.txt\n      sha256'),
    );
    expect(lockIsCurrent(loadManifest(path)).problems).toEqual([
      'hello is locked for arm64, the manifest builds amd64',
      'libgcc-s1 is locked from suite "elsewhere", which no source names',
      `files: ${join(work, 'data', 'hello.txt')} has no pin in the lock`,
    ]);
  });

  it('locks name=version requests, and refuses unknown packages with a resolve error', async () => {
    const path = setup(['curl', 'libcurl4=7.88.1-10']);
    await lockFile(path);
    const m = loadManifest(path);
    expect(m.lock!.packages.map((p) => p.name)).toEqual(['curl', 'libc6', 'libcurl4', 'libgcc-s1']);
    expect(lockIsCurrent(m).ok).toBe(true);
    rmSync(work, { recursive: true, force: true });
    const bad = setup(['no-such-thing']);
    await expect(resolveLock(loadManifest(bad), { cacheDir, aptRoot: '/nonexistent', env: {} })).rejects.toMatchObject({
      kind: 'resolve',
      message: expect.stringContaining('no-such-thing: no such package'),
    });
  });

  it("resolves the dependencies of local .debs, which satisfy others' dependencies", async () => {
    const d = repo.deb('localtool');
    const path = setup([`{ deb: ${d.path}, sha256: "${d.sha256}" }`, 'needs-mta']);
    await lockFile(path);
    const m = loadManifest(path);
    expect(m.lock!.packages.map((p) => p.name)).toEqual(['hello', 'libc6', 'libgcc-s1', 'needs-mta']);
    expect(lockIsCurrent(m).ok).toBe(true);
    // Only a local .deb requested: its dependencies are pinned, and that lock is current.
    rmSync(work, { recursive: true, force: true });
    const only = setup([`{ deb: ${d.path}, sha256: "${d.sha256}" }`]);
    await lockFile(only);
    const mo = loadManifest(only);
    expect(mo.lock!.packages.length).toBeGreaterThan(0);
    expect(lockIsCurrent(mo)).toEqual({ ok: true, problems: [] });
    rmSync(work, { recursive: true, force: true });
    const bad = setup([`{ deb: ${d.path}, sha256: "${'0'.repeat(64)}" }`]);
    await expect(resolveLock(loadManifest(bad), { cacheDir, aptRoot: '/nonexistent', env: {} })).rejects.toMatchObject({
      kind: 'input',
      message: expect.stringContaining(`the manifest pins ${'0'.repeat(64)}`),
    });
  });

  it('CLI: lock --check exits 11 when stale, lock writes, --check then passes', async () => {
    const path = setup(['hello']);
    const run = async (args: string[]) => {
      const out: string[] = [];
      const write = process.stdout.write.bind(process.stdout);
      const errWrite = process.stderr.write.bind(process.stderr);
      process.stdout.write = ((s: string) => (out.push(String(s)), true)) as typeof process.stdout.write;
      process.stderr.write = ((s: string) => (out.push(String(s)), true)) as typeof process.stderr.write;
      const program = new Command().exitOverride();
      registerLock(program);
      try {
        process.exitCode = 0;
        await program.parseAsync(['node', 'mkimg', ...args]);
      } finally {
        process.stdout.write = write;
        process.stderr.write = errWrite;
      }
      const code = process.exitCode;
      process.exitCode = 0;
      return { code, out: out.join('') };
    };
    const stale = await run(['lock', '--check', path, '--json']);
    expect(stale.code).toBe(11);
    expect(JSON.parse(stale.out)).toMatchObject({ current: false });
    const env = process.env.XDG_CACHE_HOME;
    process.env.XDG_CACHE_HOME = cacheDir;
    try {
      const locked = await run(['lock', path, '--json', '--cache-dir', cacheDir, '--mirror', `local=${repo.url}`]);
      expect(locked.code).toBe(0);
      expect(JSON.parse(locked.out)).toMatchObject({
        changed: true,
        packages: [{ name: 'hello' }, { name: 'libc6' }, { name: 'libgcc-s1' }],
      });
      const again = await run(['lock', path, '--cache-dir', cacheDir]);
      expect(again.out).toContain('nothing changed; packages unchanged');
      const full = await run(['lock', path, '--full', '--cache-dir', cacheDir, '--mirror', `local=${repo.url}`]);
      expect(full.out).toContain('lock unchanged');
    } finally {
      if (env === undefined) delete process.env.XDG_CACHE_HOME;
      else process.env.XDG_CACHE_HOME = env;
    }
    const ok = await run(['lock', '--check', path]);
    expect(ok.code).toBe(0);
    const err = await run(['lock', join(work, 'missing.yaml')]);
    expect(err.code).toBe(new MkimgError('usage', '').exitCode);
  });
});

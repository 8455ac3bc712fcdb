/**
 * The package root kept in the cache: a second minimized build uses it in
 * place, writing and linking nothing in it (same image bytes), a
 * hand-changed (even keeping size and mtime) or truncated cached root is found and
 * staged again, a killed fill leaves a temporary that is collected, two
 * builds sharing an empty cache at once both succeed with the same bytes,
 * and a rebuild that must prove an image (cachedWork: false) never reads it.
 */
import { createHash } from 'node:crypto';
import {
  appendFileSync,
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  lstatSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildImage } from '../../src/build/build.js';
import { PackageRootCache } from '../../src/stage/package-root.js';
import { writeRootFile } from '../../src/system/rootfs.js';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { canRunAsNobody, MKIMG, mkimg, mkimgAsNobody, mkimgAsync } from '../helpers/cli.js';
import { writeSampleProject } from '../helpers/sample-project.js';

let work: string;
let manifest: string;

const sha256 = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'mkimg-package-root-'));
  manifest = writeSampleProject(join(work, 'proj'), { minimize: true });
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function build(name: string, cacheDir: string, rootCache?: boolean, manifestPath = manifest): Promise<string> {
  const output = join(work, `${name}.tar`);
  await buildImage({
    manifestPath,
    output,
    cacheDir,
    quiet: true,
    ...(rootCache === false ? { cachedWork: false } : {}),
  });
  return sha256(output);
}

function cachedRoot(cacheDir: string): string {
  const roots = readdirSync(join(cacheDir, 'roots')).filter((n) => !n.startsWith('.'));
  expect(roots).toHaveLength(1);
  return join(cacheDir, 'roots', roots[0]!);
}

describe('the staged closure in the cache', () => {
  it('a build killed (SIGKILL) while filling the cache leaves a state the next build recovers from', async () => {
    const cacheDir = join(work, 'cache-kill');
    const roots = join(cacheDir, 'roots');
    const child = spawn(
      process.execPath,
      [MKIMG, 'build', manifest, '-o', join(work, 'killed.tar'), '--cache-dir', cacheDir],
      {
        stdio: 'ignore',
      },
    );
    const exited = new Promise((r) => child.on('close', r));
    // Kill it as soon as it starts filling roots/ (a temporary appears), or when it is done anyway.
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && child.exitCode === null) {
      if (existsSync(roots) && readdirSync(roots).some((n) => n.startsWith('.tmp-'))) break;
      await new Promise((r) => setTimeout(r, 2));
    }
    child.kill('SIGKILL');
    await exited;
    // Whatever it left (a temporary, a whole entry, or nothing), the next build succeeds with the same bytes.
    const clean = await build('after-kill', cacheDir);
    expect(await build('after-kill-2', cacheDir)).toBe(clean);
    expect(readdirSync(roots).filter((n) => n.startsWith('.tmp-'))).toEqual([]);
    cachedRoot(cacheDir);
  });

  it('is kept by the first build and used in place by the next, with the same bytes; a changed one is staged again', async () => {
    const cacheDir = join(work, 'cache-1');
    const clean = await build('cold', cacheDir);
    const root = cachedRoot(cacheDir);
    expect(JSON.parse(readFileSync(join(root, 'index.json'), 'utf8')).entries.length).toBeGreaterThan(5);
    const inodes = () =>
      readdirSync(join(root, 'root'), { recursive: true, encoding: 'utf8' })
        .sort()
        .map((p) => {
          const st = lstatSync(join(root, 'root', p), { bigint: true });
          return `${p} ${st.ino} ${st.nlink} ${st.ctimeNs} ${st.mtimeNs}`;
        });
    const before = inodes();
    expect(await build('warm', cacheDir)).toBe(clean);
    // The checks ran over it and the layers read it, but nothing in it was written, linked or added.
    expect(inodes()).toEqual(before);
    // Beside it, what builds learnt of its files (ELF headers, proofs, the package layer's digest); unreadable
    // or odd facts are learnt again, with the same image.
    expect(readdirSync(root).sort()).toEqual([
      'elf.json',
      'index.json',
      'keep-sets.json',
      'layers.json',
      'proofs.json',
      'root',
    ]);
    const layers = JSON.parse(readFileSync(join(root, 'layers.json'), 'utf8'));
    expect(Object.values(layers)).toEqual([[expect.stringMatching(/^[0-9a-f]{64}$/), expect.any(Number)]]);
    writeFileSync(join(root, 'elf.json'), '{"/usr/bin/busybox": {"class": 7}, "x": 1');
    writeFileSync(
      join(root, 'layers.json'),
      JSON.stringify(Object.fromEntries(Object.keys(layers).map((k) => [k, ['nope', -1]]))),
    );
    expect(await build('odd-facts', cacheDir)).toBe(clean);
    expect(JSON.parse(readFileSync(join(root, 'layers.json'), 'utf8'))).toEqual(layers);

    // Same size, mtime put back: only the ctime tells, and that is enough.
    const readmePath = join(root, 'root', 'usr', 'share', 'doc', 'hello-busybox', 'README');
    const st = statSync(readmePath);
    writeFileSync(readmePath, 'README\n');
    utimesSync(readmePath, st.atime, st.mtime);
    expect(statSync(readmePath).size).toBe(st.size);
    expect(await build('after-quiet-edit', cacheDir)).toBe(clean);
    expect(
      readFileSync(join(cachedRoot(cacheDir), 'root', 'usr', 'share', 'doc', 'hello-busybox', 'README'), 'utf8'),
    ).toBe('readme\n');

    // A file changed by hand (the index no longer matches): found, dropped, staged again.
    appendFileSync(join(root, 'root', 'usr', 'share', 'doc', 'hello-busybox', 'README'), 'edited\n');
    expect(await build('after-edit', cacheDir)).toBe(clean);
    expect(
      readFileSync(join(cachedRoot(cacheDir), 'root', 'usr', 'share', 'doc', 'hello-busybox', 'README'), 'utf8'),
    ).toBe('readme\n');

    // The program the check runs changed (it now fails to start): the failure is put down to the
    // change, the entry dropped, and the build starts again from the packages.
    const busybox = join(cachedRoot(cacheDir), 'root', 'usr', 'bin', 'busybox');
    rmSync(busybox);
    writeFileSync(busybox, '#!/nonexistent\n', { mode: 0o755 });
    expect(await build('after-binary', cacheDir)).toBe(clean);
    // A FIFO where a file was: refused without waiting on it.
    const readme = join(cachedRoot(cacheDir), 'root', 'usr', 'share', 'doc', 'hello-busybox', 'README');
    rmSync(readme);
    execFileSync('mkfifo', [readme]);
    expect(await build('after-fifo', cacheDir)).toBe(clean);
    expect(
      statSync(join(cachedRoot(cacheDir), 'root', 'usr', 'share', 'doc', 'hello-busybox', 'README')).isFile(),
    ).toBe(true);

    // Cut short: the index file truncated.
    const index = join(cachedRoot(cacheDir), 'index.json');
    writeFileSync(index, readFileSync(index).subarray(0, 100));
    expect(await build('after-cut', cacheDir)).toBe(clean);
    expect(JSON.parse(readFileSync(join(cachedRoot(cacheDir), 'index.json'), 'utf8')).entries.length).toBeGreaterThan(
      10,
    );
  });

  it('is used as found by a plain build, and never by a proving rebuild (nothing vouches for it)', async () => {
    const cacheDir = join(work, 'cache-2');
    const clean = await build('clean', cacheDir);
    // A consistent forgery: the file and its sha256 in the index both changed.
    const root = cachedRoot(cacheDir);
    const file = join(root, 'root', 'usr', 'share', 'doc', 'hello-busybox', 'copyright');
    rmSync(file);
    writeFileSync(file, 'forged\n');
    const index = JSON.parse(readFileSync(join(root, 'index.json'), 'utf8'));
    const e = index.entries.find((x: { path: string }) => x.path === '/usr/share/doc/hello-busybox/copyright');
    e.sha256 = createHash('sha256').update('forged\n').digest('hex');
    e.size = 7;
    writeFileSync(join(root, 'index.json'), JSON.stringify(index));
    expect(await build('forged', cacheDir)).not.toBe(clean);
    expect(await build('proving', cacheDir, false)).toBe(clean);
  });

  it('collects the temporary of a killed fill and roots of an older format, and two builds sharing an empty cache both succeed alike', async () => {
    const cacheDir = join(work, 'cache-3');
    mkdirSync(join(cacheDir, 'roots'), { recursive: true });
    const dead = join(cacheDir, 'roots', '.tmp-999999-0badf00d');
    mkdirSync(join(dead, 'root'), { recursive: true });
    // A root an older mkimg kept (format 2, before byte code: under a key no build asks for now) is removed when one is filled.
    const old = join(cacheDir, 'roots', 'a'.repeat(64));
    mkdirSync(join(old, 'root', 'usr'), { recursive: true });
    writeFileSync(join(old, 'index.json'), '{"format":2,"entries":[],"packages":[]}');
    const outs = [join(work, 'c1.tar'), join(work, 'c2.tar')];
    const runs = await Promise.all(outs.map((o) => mkimgAsync(['build', manifest, '-o', o, '--cache-dir', cacheDir])));
    for (const r of runs) expect(r.code, r.stderr).toBe(0);
    expect(sha256(outs[0]!)).toBe(sha256(outs[1]!));
    expect(existsSync(dead)).toBe(false);
    expect(existsSync(old)).toBe(false);
    cachedRoot(cacheDir);
  });

  it('a warm build runs its checks once, in the root an earlier build kept, when their trace gives that keep set again; otherwise two rounds, and the same bytes either way', async () => {
    const proj = join(work, 'guessed');
    const m = writeSampleProject(proj, { minimize: true });
    const cacheDir = join(work, 'cache-guessed');
    const runSh = join(proj, 'app', 'run.sh');
    /** A build, how its checks ran, and the bytes a build with no cached work (verify's rebuild) gives. */
    const build = async (name: string) => {
      const out = join(work, `${name}.tar`);
      const r = await mkimgAsync(
        ['build', m, '-o', out, '--cache-dir', cacheDir, '--report', join(work, `${name}.report.json`)],
        { env: { ...process.env, MKIMG_TIMINGS: '1' } },
      );
      expect(r.code, r.stderr).toBe(0);
      const rounds = r.stderr.includes('in one round with the checks')
        ? 'one'
        : r.stderr.includes('proven before on the same bytes')
          ? 'proven'
          : 'two';
      return { sha: sha256(out), rounds };
    };
    // verify's rebuild: no cached root, so no earlier keep set either; its report is the one-round build's too.
    const uncached = async (name: string) => {
      const out = join(work, `${name}-uncached.tar`);
      const lines: string[] = [];
      const report = join(work, `${name}-uncached.report.json`);
      await buildImage({
        manifestPath: m,
        output: out,
        cacheDir,
        quiet: true,
        cachedWork: false,
        reportPath: report,
        onProgress: (l) => lines.push(l),
      });
      expect(lines.join('\n')).toContain('minimize: proof round 1');
      expect(lines.join('\n')).not.toContain('in one round');
      expect(readFileSync(report, 'utf8')).toBe(readFileSync(join(work, `${name}.report.json`), 'utf8'));
      return sha256(out);
    };
    const edit = (script: string) => {
      writeFileSync(runSh, `#!/bin/sh\n${script}echo "hello from $0"\n`);
      expect(mkimg(['lock', m]).code).toBe(0);
    };
    const cold = await build('guess-cold');
    expect(cold.rounds).toBe('two');
    expect(Object.values(JSON.parse(readFileSync(join(cachedRoot(cacheDir), 'keep-sets.json'), 'utf8')))).toHaveLength(
      1,
    );
    expect(await build('guess-warm')).toEqual({ sha: cold.sha, rounds: 'one' });
    // The program the check runs changed, what it touches did not: still one round, and that round proves it.
    edit('x=1\n');
    const edited = await build('guess-edit');
    expect(edited.rounds).toBe('one');
    expect(edited.sha).toBe(await uncached('guess-edit'));
    // It now lists /usr/bin, where the earlier keep set hides the echo link, and reads what it lists: in the
    // full root it reads the link too, so it must be kept. The listing sends the build to the two rounds.
    edit('for f in /usr/bin/*; do read -r x < "$f" || true; done\n');
    const listing = await build('guess-listing');
    expect(listing.rounds).toBe('two');
    expect(listing.sha).toBe(await uncached('guess-listing'));
    // It reads a file the earlier keep set hides: two rounds, the file kept.
    edit('read -r x < /usr/share/doc/hello-busybox/README\n');
    const hidden = await build('guess-hidden');
    expect(hidden.rounds).toBe('two');
    expect(hidden.sha).toBe(await uncached('guess-hidden'));
    expect(await build('guess-hidden-again')).toEqual({ sha: hidden.sha, rounds: 'one' });
  });

  it('with minimize.exclude (touched paths dropped on purpose) a first proof round that passed on the same bytes and checks is not run again; any change to what is kept runs it', async () => {
    const proj = join(work, 'proven');
    const m = writeSampleProject(proj, { minimize: true, extraYaml: 'minimize:\n  exclude: ["/nowhere/**"]\n' });
    const cacheDir = join(work, 'cache-proven');
    const build = async (name: string) => {
      const out = join(work, `${name}.tar`);
      const r = await mkimgAsync(['build', m, '-o', out, '--cache-dir', cacheDir], {
        env: { ...process.env, MKIMG_TIMINGS: '1' },
      });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).not.toContain('in one round with the checks');
      return { sha: sha256(out), proven: r.stderr.includes('proven before on the same bytes') };
    };
    const cold = await build('proven-cold');
    expect(cold.proven).toBe(false);
    const warm = await build('proven-warm');
    expect(warm).toEqual({ sha: cold.sha, proven: true });
    expect(JSON.parse(readFileSync(join(cachedRoot(cacheDir), 'proofs.json'), 'utf8'))).toHaveLength(1);
    // A file no check touches (not kept) changed: the minimized root is the same, so is its proof.
    writeFileSync(join(proj, 'app', 'README'), 'changed\n');
    expect(mkimg(['lock', m]).code).toBe(0);
    expect((await build('proven-readme')).proven).toBe(true);
    // The program the check runs changed: proved again.
    writeFileSync(join(proj, 'app', 'run.sh'), '#!/bin/sh\necho "hi from $0"\n');
    expect(mkimg(['lock', m]).code).toBe(0);
    const edited = await build('proven-edit');
    expect(edited.proven).toBe(false);
    expect((await build('proven-edit-again')).proven).toBe(true);
    // A proving rebuild (verify's) never takes a proof from the cache.
    await buildImage({
      manifestPath: m,
      output: join(work, 'proven-uncached.tar'),
      cacheDir,
      quiet: true,
      cachedWork: false,
    });
    expect(sha256(join(work, 'proven-uncached.tar'))).toBe(edited.sha);
  });

  it('minimize: false keeps the data archives and their index instead: used in place, a changed archive found and unpacked again', async () => {
    const plainManifest = writeSampleProject(join(work, 'plain'), { minimize: false });
    const cacheDir = join(work, 'cache-index');
    const once = (name: string, cachedWork = true) => build(name, cacheDir, cachedWork, plainManifest);
    const clean = await once('index-cold', false);
    expect(existsSync(join(cacheDir, 'roots'))).toBe(false);
    expect(await once('index-fill')).toBe(clean);
    const root = cachedRoot(cacheDir);
    const index = JSON.parse(readFileSync(join(root, 'index.json'), 'utf8'));
    const archives = Object.keys(index.archives);
    expect(archives.length).toBeGreaterThan(0);
    expect(readdirSync(join(root, 'root.debdata')).length).toBe(archives.length);
    const inodes = () =>
      archives.map((a) => lstatSync(join(root, a), { bigint: true })).map((st) => `${st.ino} ${st.ctimeNs}`);
    const before = inodes();
    expect(await once('index-warm')).toBe(clean);
    expect(inodes()).toEqual(before);
    // An archive changed in place (same size): found by its record, the entry unpacked again.
    const archive = join(root, archives[0]!);
    const original = readFileSync(archive);
    const bytes = Buffer.from(original);
    bytes[bytes.length >> 1] ^= 1;
    writeFileSync(archive, bytes);
    expect(await once('index-after-edit')).toBe(clean);
    expect(readFileSync(join(cachedRoot(cacheDir), archives[0]!)).equals(original)).toBe(true);
  });

  it('minimize: false: a file generated beside the archives (byte code) is recorded like them; a changed one drops the root', async () => {
    const cacheDir = join(work, 'cache-generated');
    const cache = new PackageRootCache(cacheDir, 'index');
    const key = 'b'.repeat(64);
    const pyc = '/usr/lib/python3.11/__pycache__/os.cpython-311.pyc';
    await cache.fill(key, async (root) => {
      writeRootFile(root, pyc, 'byte code', 'pkg:libpython3.11-minimal');
    });
    const index = JSON.parse(readFileSync(join(cacheDir, 'roots', key, 'index.json'), 'utf8'));
    expect(Object.keys(index.archives)).toEqual([`root${pyc}`]);
    const opened = cache.open(key);
    const e = opened?.entries.find((x) => x.path === pyc);
    expect(readFileSync(e!.hostPath!, 'utf8')).toBe('byte code');
    writeFileSync(e!.hostPath!, 'byte kode');
    expect(cache.open(key)).toBeUndefined();
    expect(existsSync(join(cacheDir, 'roots', key))).toBe(false);
  });

  it.skipIf(!canRunAsNobody)(
    'rootless: an unprivileged user builds the same image, cold and warm, as root (overlay and whiteouts in a user namespace)',
    async () => {
      const d = mkdtempSync(join(tmpdir(), 'mkimg-rootless-build-'));
      try {
        chmodSync(d, 0o777);
        const m = writeSampleProject(join(d, 'proj'), { minimize: true });
        execFileSync('chmod', ['-R', 'a+rwX', d]);
        const asRoot = join(work, 'root-built.tar');
        await buildImage({ manifestPath: m, output: asRoot, cacheDir: join(work, 'cache-rootless-root'), quiet: true });
        for (const name of ['cold', 'warm']) {
          const out = join(d, `${name}.tar`);
          const cmd = mkimgAsNobody(['build', m, '-o', out, '--cache-dir', join(d, 'cache')], { HOME: d, TMPDIR: d });
          const r = spawnSync(cmd.argv[0]!, cmd.argv.slice(1), { encoding: 'utf8', timeout: 120_000 });
          cmd.done();
          expect(r.status, r.stderr).toBe(0);
          expect(sha256(out)).toBe(sha256(asRoot));
        }
      } finally {
        rmSync(d, { recursive: true, force: true });
      }
    },
  );
});

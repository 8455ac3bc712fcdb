/**
 * Python byte code as Debian's postinsts would have compiled it: which
 * sources (pure), the compiler's output format (malformed output refused),
 * and a real compile by the host's python3.11 in the sandbox: checked-hash
 * files the interpreter then uses, the same bytes whatever the order or hash
 * seed, none for a source that does not compile.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bytecodePlans, cachePathOf, compileBytecode, parseCompilerOutput } from '../../src/debian/bytecode.js';
import { stagingRootAt } from '../../src/stage/root.js';
import type { StageEntry, StagingRoot } from '../../src/stage/types.js';
import { MkimgError } from '../../src/util/errors.js';
import { TRACER, addPython, buildTracer, makeRoot, scanRoot } from '../helpers/tracer-root.js';
import { mkimg } from '../helpers/cli.js';
import { makeDeb } from '../helpers/make-deb.js';
import { inspectImage } from '../../src/inspect/inspect.js';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';

function entry(path: string, type: StageEntry['type'], origin: string, mode = 0o644): StageEntry {
  return { path, type, mode, uid: 0, gid: 0, size: 1, origin };
}

function fakeRoot(entries: StageEntry[], packages: { name: string; paths: string[] }[]): StagingRoot {
  const root = stagingRootAt('/nonexistent');
  for (const e of entries) root.entries.set(e.path, e);
  for (const p of packages)
    root.packages.push({ name: p.name, version: '1', architecture: 'amd64', sha256: '0', control: '', paths: p.paths });
  return root;
}

describe('which sources are compiled', () => {
  it('names the cache file as importlib does', () => {
    expect(cachePathOf('/usr/lib/python3.11/json/__init__.py', 'cpython-311')).toBe(
      '/usr/lib/python3.11/json/__pycache__/__init__.cpython-311.pyc',
    );
    expect(cachePathOf('/usr/lib/python3.11/a.b.py', 'cpython-311')).toBe(
      '/usr/lib/python3.11/__pycache__/a.b.cpython-311.pyc',
    );
  });

  it("every .py a package still owns under the interpreter's library folders; none without an interpreter", () => {
    const entries = [
      entry('/usr/bin/python3.11', 'file', 'pkg:python3.11-minimal', 0o755),
      entry('/usr/lib/python3.11/os.py', 'file', 'pkg:libpython3.11-minimal'),
      entry('/usr/lib/python3.11/json/__init__.py', 'file', 'pkg:libpython3.11-stdlib', 0o640),
      entry('/usr/lib/python3.11/link.py', 'symlink', 'pkg:libpython3.11-stdlib'),
      entry('/usr/lib/python3.11/taken.py', 'file', 'file:app'), // a files: input replaced it
      entry('/usr/lib/python3.11/has.py', 'file', 'pkg:libpython3.11-stdlib'),
      entry('/usr/lib/python3.11/__pycache__/has.cpython-311.pyc', 'file', 'pkg:libpython3.11-stdlib'),
      entry('/usr/lib/python3/dist-packages/yaml/__init__.py', 'file', 'pkg:python3-yaml'),
      entry('/usr/share/doc/x.py', 'file', 'pkg:libpython3.11-stdlib'),
      entry('/usr/lib/python3.12/other.py', 'file', 'pkg:libpython3.12-minimal'),
    ];
    const packages = [
      { name: 'libpython3.11-minimal', paths: ['/usr/lib/python3.11/os.py'] },
      {
        name: 'libpython3.11-stdlib',
        paths: [
          '/usr/lib/python3.11/json/__init__.py',
          '/usr/lib/python3.11/link.py',
          '/usr/lib/python3.11/taken.py',
          '/usr/lib/python3.11/has.py',
          '/usr/lib/python3.11/__pycache__/has.cpython-311.pyc',
          '/usr/share/doc/x.py',
        ],
      },
      { name: 'python3-yaml', paths: ['/usr/lib/python3/dist-packages/yaml/__init__.py'] },
      { name: 'libpython3.12-minimal', paths: ['/usr/lib/python3.12/other.py'] },
      { name: 'python3.11-minimal', paths: ['/usr/bin/python3.11'] },
    ];
    expect(bytecodePlans(fakeRoot(entries, packages))).toEqual([
      {
        interpreter: '/usr/bin/python3.11',
        cacheTag: 'cpython-311',
        sources: [
          { path: '/usr/lib/python3.11/json/__init__.py', owner: 'libpython3.11-stdlib', mode: 0o640 },
          { path: '/usr/lib/python3.11/os.py', owner: 'libpython3.11-minimal', mode: 0o644 },
          { path: '/usr/lib/python3/dist-packages/yaml/__init__.py', owner: 'python3-yaml', mode: 0o644 },
        ],
      },
    ]);
    // No interpreter, or one that is not a package's: nothing to compile.
    expect(bytecodePlans(fakeRoot(entries.slice(1), packages))).toEqual([]);
    expect(
      bytecodePlans(fakeRoot([entry('/usr/bin/python3.11', 'file', 'file:app'), ...entries.slice(1)], packages)),
    ).toEqual([]);
  });
});

describe('a foreign architecture', () => {
  it('without emulation: exit 14 naming qemu-user-static and bytecode: false, before anything runs', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'mkimg-no-binfmt-'));
    dirs.push(empty);
    const before = process.env.MKIMG_BINFMT_DIR;
    process.env.MKIMG_BINFMT_DIR = empty;
    try {
      const plan = { interpreter: '/usr/bin/python3.11', cacheTag: 'cpython-311', sources: [] };
      const root = fakeRoot([], []);
      const err = await compileBytecode(root, [plan], { architecture: 'arm64', runIn: '/nonexistent' }).catch((e) => e);
      expect(err).toBeInstanceOf(MkimgError);
      expect(err.kind).toBe('sandbox');
      expect(err.message).toMatch(
        /^cannot compile the Python byte code of \/usr\/bin\/python3\.11 \(arm64\) on this host: .*no binfmt_misc handler for aarch64/,
      );
      expect(err.hint).toMatch(/qemu-user-static.*; or set bytecode: false in the manifest/);
    } finally {
      if (before === undefined) delete process.env.MKIMG_BINFMT_DIR;
      else process.env.MKIMG_BINFMT_DIR = before;
    }
  });
});

describe("the compiler's output", () => {
  const rec = (i: number, data: Buffer) => Buffer.concat([Buffer.from(`${i}\0${data.length}\0`), data]);
  const pyc = Buffer.alloc(20, 7);

  it('reads records by source index', () => {
    const out = parseCompilerOutput(Buffer.concat([rec(0, pyc), rec(2, Buffer.alloc(16, 1))]), 3);
    expect([...out.keys()]).toEqual([0, 2]);
    expect(out.get(0)).toEqual(pyc);
    expect(parseCompilerOutput(Buffer.alloc(0), 3).size).toBe(0);
  });

  it.each([
    ['an index past the sources', Buffer.concat([rec(3, pyc)])],
    ['a source twice', Buffer.concat([rec(0, pyc), rec(0, pyc)])],
    ['a truncated record', rec(0, pyc).subarray(0, 15)],
    ['a record without its header', Buffer.from('garbage')],
    ['a negative index', Buffer.concat([Buffer.from('-1\x0020\x00'), pyc])],
    ['an empty index', Buffer.concat([Buffer.from('\x0020\x00'), pyc])],
    ['a length that is not a number', Buffer.concat([Buffer.from('0\x00 20\x00'), pyc])],
    ['a length too short for a .pyc header', rec(1, Buffer.alloc(4))],
  ])('refuses %s', (_name, out) => {
    expect(() => parseCompilerOutput(out, 3)).toThrow(MkimgError);
    expect(() => parseCompilerOutput(out, 3)).toThrow(/byte code compiler's output is malformed/);
  });
});

const hasPython = existsSync('/usr/bin/python3.11') && existsSync('/usr/lib/python3.11/os.py');
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A root holding the host's python3.11 and its library without any byte code, indexed as two packages. */
function pythonRoot(extra: Record<string, string> = {}): StagingRoot {
  buildTracer();
  const dir = makeRoot();
  dirs.push(dir);
  addPython(dir);
  execFileSync('find', [
    join(dir, 'usr/lib/python3.11'),
    '-name',
    '__pycache__',
    '-prune',
    '-exec',
    'rm',
    '-rf',
    '{}',
    '+',
  ]);
  for (const [p, text] of Object.entries(extra)) writeFileSync(join(dir, p), text);
  const root = scanRoot(dir, (p) =>
    p === '/usr/bin/python3.11'
      ? 'pkg:python3.11-minimal'
      : p.startsWith('/usr/lib/python3.11/')
        ? 'pkg:libpython3.11-minimal'
        : 'pkg:libs',
  );
  const paths = [...root.entries.keys()].filter((p) => p.startsWith('/usr/lib/python3.11/'));
  root.packages.push(
    { name: 'libpython3.11-minimal', version: '1', architecture: 'amd64', sha256: '0', control: '', paths },
    {
      name: 'python3.11-minimal',
      version: '1',
      architecture: 'amd64',
      sha256: '0',
      control: '',
      paths: ['/usr/bin/python3.11'],
    },
  );
  return root;
}

describe.skipIf(!hasPython)("compiled in the sandbox by the root's own interpreter", () => {
  it('writes checked-hash byte code the interpreter uses; the same bytes for another order; none for a bad source', async () => {
    const root = pythonRoot({ 'usr/lib/python3.11/broken_mkimg.py': 'def (:\n' });
    const plans = bytecodePlans(root);
    expect(plans).toHaveLength(1);
    const written = await compileBytecode(root, plans, { architecture: 'amd64', runIn: root.dir });
    const json = '/usr/lib/python3.11/json/__pycache__/__init__.cpython-311.pyc';
    expect(written).toContain(json);
    expect(written).toContain('/usr/lib/python3.11/json/__pycache__');
    expect(written.some((p) => p.includes('broken_mkimg'))).toBe(false);
    const e = root.entries.get(json)!;
    expect(e).toMatchObject({ type: 'file', mode: 0o644, uid: 0, gid: 0, origin: 'pkg:libpython3.11-minimal' });
    expect(root.packages[0]!.generated).toContain(json);
    // Magic of this interpreter, flags 0b11 (hash-based, checked), the source's hash (PEP 552).
    const check = spawnSync(
      '/usr/bin/python3.11',
      [
        '-c',
        'import sys, importlib.util as u; s = open(sys.argv[1], "rb").read(); b = open(sys.argv[2], "rb").read(); print(b[:4] == u.MAGIC_NUMBER, int.from_bytes(b[4:8], "little"), b[8:16] == u.source_hash(s))',
        join(root.dir, '/usr/lib/python3.11/json/__init__.py'),
        join(root.dir, json),
      ],
      { encoding: 'utf8' },
    );
    expect(check.stdout).toBe('True 3 True\n');

    // The interpreter in the sandbox (root read-only) loads it instead of compiling.
    const events = join(root.dir, '..', `events-${process.pid}`);
    const run = spawnSync(
      TRACER,
      ['--root', root.dir, '--no-trace', '--events', events, '--', '/usr/bin/python3.11', '-v', '-c', 'import json'],
      { encoding: 'utf8' },
    );
    expect(run.status, run.stderr).toBe(0);
    expect(run.stderr).toContain(`${json} matches /usr/lib/python3.11/json/__init__.py`);

    // Another root, the sources in reverse order: byte for byte the same files.
    const again = pythonRoot();
    const [plan] = bytecodePlans(again);
    await compileBytecode(again, [{ ...plan!, sources: [...plan!.sources].reverse() }], {
      architecture: 'amd64',
      runIn: again.dir,
    });
    for (const p of written.filter((w) => w.endsWith('.pyc')))
      expect(readFileSync(join(again.dir, p)).equals(readFileSync(join(root.dir, p))), p).toBe(true);
  }, 120_000);

  it('names the interpreter and its message when the compiler fails', async () => {
    const root = pythonRoot();
    const [plan] = bytecodePlans(root);
    // The interpreter cannot start: its library's codecs are gone.
    rmSync(join(root.dir, 'usr/lib/python3.11/encodings'), { recursive: true, force: true });
    const err = await compileBytecode(root, [plan!], { architecture: 'amd64', runIn: root.dir }).catch((e) => e);
    expect(err).toBeInstanceOf(MkimgError);
    expect(err.kind).toBe('sandbox');
    expect(err.message).toMatch(
      /^compiling the Python byte code with \/usr\/bin\/python3\.11 failed \(exit 1\): .*encodings/,
    );
  }, 120_000);
});

describe('in a build', () => {
  /**
   * A project whose "interpreter" is a shell script that answers like the compiler (one record for
   * the one source): the whole path through a build without a real Python, for an index root
   * (minimize: false, where the packages are unpacked once more to run it).
   */
  function project(extra: string): string {
    const dir = mkdtempSync(join(tmpdir(), 'mkimg-bytecode-build-'));
    dirs.push(dir);
    mkdirSync(join(dir, 'vendor'));
    const shell = makeDeb(join(dir, 'vendor'), {
      name: 'fake-shell',
      files: { '/usr/bin/busybox': { copyFrom: '/bin/busybox', mode: 0o755 }, '/usr/bin/sh': { symlink: 'busybox' } },
    });
    const python = makeDeb(join(dir, 'vendor'), {
      name: 'fake-python3.11',
      files: {
        '/usr/bin/python3.11': {
          content: "#!/usr/bin/sh\nbusybox cat >/dev/null\nbusybox printf '0\\00020\\000fake-byte-code-01234'\n",
          mode: 0o755,
        },
        '/usr/lib/python3.11/fake.py': { content: 'x = 1\n', mode: 0o644 },
      },
    });
    const manifest = join(dir, 'manifest.yaml');
    writeFileSync(
      manifest,
      `apiVersion: mkimg/v1\nname: test/bytecode\nsourceDateEpoch: 1700000000\npackages:\n` +
        [shell, python].map((d) => `  - deb: vendor/${d.path.split('/').pop()}\n    sha256: "${d.sha256}"\n`).join('') +
        `config:\n  entrypoint: ["/usr/bin/sh"]\nminimize: false\n${extra}`,
    );
    const locked = mkimg(['lock', manifest]);
    expect(locked.code, locked.stderr).toBe(0);
    return manifest;
  }
  const pyc = '/usr/lib/python3.11/__pycache__/fake.cpython-311.pyc';

  it("writes the interpreter's answer as the package's byte code; bytecode: false runs nothing and writes none", async () => {
    const cache = mkdtempSync(join(tmpdir(), 'mkimg-bytecode-cache-'));
    dirs.push(cache);
    const on = project('');
    const out = join(dirname(on), 'on.tar');
    const built = mkimg(['build', on, '-o', out, '--cache-dir', cache]);
    expect(built.code, built.stderr).toBe(0);
    const image = await inspectImage(out, { files: true, contents: new Set([pyc]) });
    expect(image.files!.find((f) => f.path === pyc)).toMatchObject({ package: 'fake-python3.11', mode: 0o644 });
    expect(image.contents!.get(pyc)!.toString()).toBe('fake-byte-code-01234');
    // Warm: the cached root holds it; the same bytes.
    const warm = join(dirname(on), 'warm.tar');
    expect(mkimg(['build', on, '-o', warm, '--cache-dir', cache]).code).toBe(0);
    expect(readFileSync(warm).equals(readFileSync(out))).toBe(true);

    const off = project('bytecode: false\n');
    const offOut = join(dirname(off), 'off.tar');
    const b = mkimg(['build', off, '-o', offOut, '--cache-dir', cache]);
    expect(b.code, b.stderr).toBe(0);
    expect(b.stderr).not.toMatch(/byte code/);
    const plain = await inspectImage(offOut, { files: true });
    expect(plain.files!.some((f) => f.path.includes('__pycache__'))).toBe(false);
    expect(plain.files!.some((f) => f.path === '/usr/lib/python3.11/fake.py')).toBe(true);
  }, 120_000);

  it('an interpreter that fails stops the build with exit 14 naming it', () => {
    const m = project('');
    const dir = dirname(m);
    const broken = makeDeb(join(dir, 'vendor'), {
      name: 'fake-python3.11',
      version: '2.0',
      files: {
        '/usr/bin/python3.11': {
          content: '#!/usr/bin/sh\necho "Fatal Python error: no codecs" >&2\nexit 1\n',
          mode: 0o755,
        },
        '/usr/lib/python3.11/fake.py': { content: 'x = 1\n', mode: 0o644 },
      },
    });
    const text = readFileSync(m, 'utf8').replace(/^lock:[\s\S]*$/m, '');
    writeFileSync(
      m,
      text.replace(
        /fake-python3\.11_[^\n]*\n {4}sha256: "[0-9a-f]+"/,
        `${broken.path.split('/').pop()}\n    sha256: "${broken.sha256}"`,
      ),
    );
    expect(mkimg(['lock', m]).code).toBe(0);
    const r = mkimg(['build', m, '-o', join(dir, 'broken.tar'), '--cache-dir', join(dir, 'cache')]);
    expect(r.code, r.stderr).toBe(14);
    expect(r.stderr).toMatch(
      /compiling the Python byte code with \/usr\/bin\/python3\.11 failed \(exit 1\): Fatal Python error: no codecs/,
    );
    expect(existsSync(join(dir, 'broken.tar'))).toBe(false);
  }, 120_000);
});

/**
 * Python byte code, as Debian's maintainer scripts would have left it.
 *
 * Debian ships Python modules as source only; the interpreter's postinst
 * (python3.X-minimal, python3.X) and every python3-* package's postinst
 * (dh_python3's py3compile) compile them into __pycache__ on install. An image
 * without them compiles every module it imports at every start, in memory when
 * its root is read-only (three times the start-up of a small program here).
 *
 * mkimg compiles, with the image's own interpreter run in the sandbox, every
 * .py file a package ships under /usr/lib/python3.X/ or
 * /usr/lib/python3/dist-packages/ when /usr/bin/python3.X is installed. The
 * byte code is "checked hash" (PEP 552): it carries a hash of its source
 * (importlib's source_hash) instead of the source's mtime, which every image
 * normalizes, so it is valid in the image and in the sandbox alike, the same
 * bytes for any sourceDateEpoch, and Python compiles in memory as before if
 * the source ever differs. The compiler's output is a pure function of the
 * interpreter and the sources (tested: another order, another hash seed).
 *
 * `bytecode: false` in the manifest skips it (build.ts does not call it).
 *
 * The files belong to the package whose source they compile (layers, SBOM)
 * without being among the files it ships: `keepPackages` does not keep them,
 * the package database does not list them; a minimized image keeps the ones
 * its checks load.
 */
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { emulationFor } from '../trace/emulation.js';
import { runTraced } from '../trace/run.js';
import type { StagingRoot } from '../stage/types.js';
import { writeRootFile } from '../system/rootfs.js';
import { pathOrder } from '../util/path-order.js';
import { MkimgError } from '../util/errors.js';

/** One interpreter and the sources it compiles. */
export interface BytecodePlan {
  /** The interpreter's image path: /usr/bin/python3.11. */
  interpreter: string;
  /** Its cache tag (sys.implementation.cache_tag): cpython-311. */
  cacheTag: string;
  /** Sources in byte order, with the package that ships each. */
  sources: { path: string; owner: string; mode: number }[];
}

/** The byte code file Python looks for beside `source` (importlib's cache_from_source, no optimization). */
export function cachePathOf(source: string, cacheTag: string): string {
  const dir = posix.dirname(source);
  const base = posix.basename(source);
  const dot = base.lastIndexOf('.');
  const stem = dot < 0 ? base : base.slice(0, dot);
  return `${dir === '/' ? '' : dir}/__pycache__/${stem}.${cacheTag}.pyc`;
}

/** What to compile in a root: one plan per installed /usr/bin/python3.X (a package's regular file). */
export function bytecodePlans(root: StagingRoot): BytecodePlan[] {
  const plans: BytecodePlan[] = [];
  const interpreters = [...root.entries.values()]
    .filter(
      (e) =>
        /^\/usr\/bin\/python3\.\d+$/.test(e.path) &&
        (e.type === 'file' || e.type === 'hardlink') &&
        e.origin.startsWith('pkg:'),
    )
    .map((e) => e.path)
    .sort(pathOrder);
  for (const interpreter of interpreters) {
    const minor = interpreter.slice('/usr/bin/python3.'.length);
    const cacheTag = `cpython-3${minor}`;
    const dirs = [`/usr/lib/python3.${minor}/`, '/usr/lib/python3/dist-packages/'];
    const sources: BytecodePlan['sources'] = [];
    const seen = new Set<string>();
    for (const pkg of root.packages) {
      const origin = `pkg:${pkg.name}`;
      for (const p of pkg.paths) {
        if (!p.endsWith('.py') || seen.has(p) || !dirs.some((d) => p.startsWith(d))) continue;
        const e = root.entries.get(p);
        // Regular files the package still owns (not a later package's, not a link), with nothing already at the cache path.
        if (e?.type !== 'file' || e.origin !== origin) continue;
        if (root.entries.has(cachePathOf(p, cacheTag))) continue;
        seen.add(p);
        sources.push({ path: p, owner: pkg.name, mode: e.mode });
      }
    }
    sources.sort((a, b) => pathOrder(a.path, b.path));
    if (sources.length > 0) plans.push({ interpreter, cacheTag, sources });
  }
  return plans;
}

/**
 * Run inside the sandbox by the image's interpreter (-S: no site; the hash seed
 * fixed): reads NUL-separated source paths on stdin, writes for each one it
 * compiles "<index>\0<length>\0<bytes>" (the checked-hash .pyc), and names on
 * stderr the ones that do not compile (as py_compile would, they get none).
 */
const COMPILER = `import sys, importlib.util as u, importlib.machinery as m, importlib._bootstrap_external as b
out = sys.stdout.buffer
for i, raw in enumerate(sys.stdin.buffer.read().split(b"\\0")[:-1]):
    path = raw.decode("utf-8", "surrogateescape")
    loader = m.SourceFileLoader("_", path)
    try:
        source = loader.get_data(path)
        code = loader.source_to_code(source, path)
    except Exception as e:
        sys.stderr.write(path + ": " + type(e).__name__ + "\\n")
        continue
    data = b._code_to_hash_pyc(code, u.source_hash(source), True)
    out.write(b"%d\\0%d\\0" % (i, len(data)) + data)
`;

/** The byte code files in the compiler's output, by source index; refuses anything malformed. */
export function parseCompilerOutput(out: Buffer, count: number): Map<number, Buffer> {
  const files = new Map<number, Buffer>();
  const bad = (why: string) =>
    new MkimgError('internal', `the Python byte code compiler's output is malformed: ${why}`);
  let at = 0;
  while (at < out.length) {
    const a = out.indexOf(0, at);
    const b = a < 0 ? -1 : out.indexOf(0, a + 1);
    const indexText = a < 0 ? '' : out.toString('latin1', at, a);
    const lengthText = b < 0 ? '' : out.toString('latin1', a + 1, b);
    if (!/^\d{1,9}$/.test(indexText) || !/^\d{1,10}$/.test(lengthText)) throw bad(`a record header at byte ${at}`);
    const index = Number(indexText);
    const length = Number(lengthText);
    if (index >= count || files.has(index)) throw bad(`source index ${indexText}`);
    if (length < 16 || b + 1 + length > out.length) throw bad(`length ${lengthText} at byte ${at}`);
    files.set(index, out.subarray(b + 1, b + 1 + length));
    at = b + 1 + length;
  }
  return files;
}

export interface CompileOptions {
  architecture: string;
  /** A host directory holding `root`'s files, where the interpreter can run (the root's own dir when it is on disk). */
  runIn: string;
  timeoutSeconds?: number;
}

/**
 * Compile what `plans` name with the root's own interpreter in the sandbox and
 * add the byte code to `root` (the mode Python would give it, 0:0,
 * the owner's origin; listed in the package's `generated`). Returns the paths written.
 */
export async function compileBytecode(
  root: StagingRoot,
  plans: BytecodePlan[],
  opts: CompileOptions,
): Promise<string[]> {
  const written: string[] = [];
  for (const plan of plans) {
    try {
      emulationFor(opts.architecture);
    } catch (e) {
      if (!(e instanceof MkimgError)) throw e;
      throw new MkimgError(
        'sandbox',
        `cannot compile the Python byte code of ${plan.interpreter} (${opts.architecture}) on this host: ${e.message}`,
        {
          hint: `${e.hint?.replace(/, or build \S+ with minimize: false$/, '') ?? 'install qemu-user-static'}; or set bytecode: false in the manifest (sources only)`,
        },
      );
    }
    const r = await runTraced({
      rootDir: opts.runIn,
      args: [plan.interpreter, '-S', '-c', COMPILER],
      env: { PYTHONHASHSEED: '0' },
      stdin: plan.sources.map((s) => `${s.path}\0`).join(''),
      timeoutSeconds: opts.timeoutSeconds ?? 600,
      trace: false,
    });
    if (r.exitCode !== 0) {
      // The lines naming an error (a fatal start-up error ends in a thread dump), else the last ones.
      const lines = `${r.stderr.toString('utf8')}\n${r.tracerMessages}`.split('\n').filter((l) => l.trim() !== '');
      const errors = lines.filter((l) => /error/i.test(l));
      const said = (errors.length > 0 ? errors.slice(-2) : lines.slice(-3)).join('; ');
      throw new MkimgError(
        'sandbox',
        `compiling the Python byte code with ${plan.interpreter} failed (exit ${r.exitCode})${said ? `: ${said}` : ''}`,
        { hint: 'this is what the package would have run on install; report it with the manifest' },
      );
    }
    const files = parseCompilerOutput(r.stdout, plan.sources.length);
    const owners = new Map(root.packages.map((p) => [p.name, p]));
    for (const [i, bytes] of [...files].sort((a, b) => a[0] - b[0])) {
      const s = plan.sources[i]!;
      const made = writeRootFile(root, cachePathOf(s.path, plan.cacheTag), bytes, `pkg:${s.owner}`, {
        // As Python writes it as root: the source's mode, owner-writable, under umask 022.
        mode: (s.mode | 0o200) & 0o644,
        uid: 0,
        gid: 0,
      });
      // Both digests the SBOM lists, as for a package's files: none of these is read again.
      root.entries.get(made.path)!.sha1 = createHash('sha1').update(bytes).digest('hex');
      const pkg = owners.get(s.owner)!;
      pkg.generated ??= [];
      pkg.generated.push(...made.created, made.path);
      written.push(...made.created, made.path);
    }
  }
  return written;
}

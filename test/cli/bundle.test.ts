/**
 * mkimg runs from dist/bundle/ (scripts/bundle.mjs), but some files are found
 * at run time through `new URL(..., import.meta.url)`: the worker threads'
 * scripts and the standalone schema validator (left in dist/<stage>/),
 * package.json and the tracer. mkimg falls back silently when the workers or
 * the validator are missing (one thread; ajv compiling the schema), so these
 * tests prove they are found from the bundle:
 * - the rule: every such URL, in a module at src/<stage>/file.ts, resolves to
 *   the same file from dist/<stage>/ and from dist/bundle/ (the same depth);
 * - the bundle: each URL in its chunks names a file that the build made;
 * - the real thing: the built CLI, run through bin/mkimg.js with a preload
 *   that records module loads and Worker scripts, loads the bundle (not
 *   dist/cli/), the standalone validator (not ajv's compiler), and starts
 *   its workers from files that exist.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { MKIMG, PROJECT_ROOT } from '../helpers/cli.js';

const SRC = join(PROJECT_ROOT, 'src');
const DIST = join(PROJECT_ROOT, 'dist');
const BUNDLE = join(DIST, 'bundle');

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** The string literals of `new URL('...', import.meta.url)` in a module's text. */
function urlLiterals(text: string): string[] {
  return [...text.matchAll(/new URL\(\s*(['"`])([^'"`]+)\1\s*,\s*import\.meta\.url\s*\)/g)].map((m) => m[2]!);
}

const resolveFrom = (dir: string, rel: string) => fileURLToPath(new URL(rel, pathToFileURL(join(dir, 'x.js'))));

describe('files found through import.meta.url, from the bundle', () => {
  const users = tsFiles(SRC).filter((f) => readFileSync(f, 'utf8').includes('import.meta.url'));

  it('every module that uses import.meta.url sits at src/<stage>/file.ts, and its URLs resolve alike from dist/<stage>/ and dist/bundle/', () => {
    expect(users.length).toBeGreaterThan(0);
    for (const f of users) {
      const parts = relative(SRC, f).split(sep);
      expect(parts.length, `${relative(PROJECT_ROOT, f)}: not at src/<stage>/file.ts, the depth of dist/bundle/`).toBe(
        2,
      );
      for (const rel of urlLiterals(readFileSync(f, 'utf8'))) {
        expect(
          resolveFrom(BUNDLE, rel),
          `${relative(PROJECT_ROOT, f)}: new URL('${rel}') names a sibling; write it as '../${parts[0]}/...'`,
        ).toBe(resolveFrom(join(DIST, parts[0]!), rel));
      }
    }
  });

  const built = existsSync(join(BUNDLE, 'main.js'));

  it.skipIf(!built)('every URL in the bundle names a file the build made', () => {
    const chunks = readdirSync(BUNDLE).filter((f) => f.endsWith('.js'));
    const inBundle = new Set(chunks.flatMap((c) => urlLiterals(readFileSync(join(BUNDLE, c), 'utf8'))));
    for (const rel of [
      '../manifest/schema-validator.cjs',
      '../stage/read-inputs-worker.js',
      '../verify/integrity-worker.js',
    ]) {
      expect(inBundle).toContain(rel);
    }
    for (const rel of inBundle)
      expect(existsSync(resolveFrom(BUNDLE, rel)), `dist/bundle: new URL('${rel}') names no file`).toBe(true);
  });

  describe.skipIf(!built)('the built CLI', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mkimg-bundle-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const log = join(dir, 'load.log');
    // Records, on the main thread, every module the ESM loader resolves,
    // every CommonJS module loaded (at exit), and the script of every Worker.
    const preload = join(dir, 'preload.mjs');
    writeFileSync(
      preload,
      `import { appendFileSync } from 'node:fs';
import { createRequire, register, syncBuiltinESMExports } from 'node:module';
import { isMainThread } from 'node:worker_threads';
const log = ${JSON.stringify(log)};
if (isMainThread) {
  register('data:text/javascript,' + encodeURIComponent(\`import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  appendFileSync(\${JSON.stringify(log)}, 'import ' + r.url + '\\\\n');
  return r;
}\`));
  const require = createRequire(import.meta.url);
  process.on('exit', () => appendFileSync(log, Object.keys(require.cache).map((f) => 'require ' + f + '\\n').join('')));
  const wt = require('node:worker_threads');
  const Worker = wt.Worker;
  wt.Worker = class extends Worker {
    constructor(url, opts) {
      appendFileSync(log, 'worker ' + String(url) + '\\n');
      super(url, opts);
    }
  };
  syncBuiltinESMExports();
}
`,
    );
    const env = { ...process.env, XDG_CACHE_HOME: join(dir, 'cache') };

    function run(args: string[], traced = false, code = 0) {
      rmSync(log, { force: true });
      const r = spawnSync(
        process.execPath,
        [...(traced ? ['--import', pathToFileURL(preload).href] : []), MKIMG, ...args],
        {
          cwd: dir,
          env,
          encoding: 'utf8',
          timeout: 120_000,
        },
      );
      expect({ code: r.status, stderr: r.stderr }, `mkimg ${args.join(' ')}`).toMatchObject({ code });
      if (!traced) return { imports: [], builtins: [], requires: [], workers: [] };
      const lines = readFileSync(log, 'utf8').split('\n');
      const pick = (kind: string) => [
        ...new Set(lines.filter((l) => l.startsWith(kind + ' ')).map((l) => l.slice(kind.length + 1))),
      ];
      return {
        imports: pick('import')
          .filter((u) => u.startsWith('file:'))
          .map((u) => fileURLToPath(u)),
        builtins: pick('import').filter((u) => u.startsWith('node:')),
        requires: pick('require'),
        workers: pick('worker').map((u) => fileURLToPath(u)),
      };
    }

    it('lock, build and verify run the bundle and find the schema validator and the workers in dist/<stage>/', () => {
      writeFileSync(join(dir, 'a.txt'), 'a\n');
      mkdirSync(join(dir, 'd'));
      writeFileSync(join(dir, 'd', 'b.txt'), 'b\n');
      // A tree big enough (256 files, 16 MiB) that lock's input hasher starts its worker.
      for (let i = 0; i < 256; i++) writeFileSync(join(dir, 'd', `f${i}`), Buffer.alloc(1 << 16, i));
      writeFileSync(
        join(dir, 'm.yaml'),
        'apiVersion: mkimg/v1\nname: e\nsourceDateEpoch: 1700000000\nminimize: false\nfiles: [{src: a.txt, dest: /a.txt}, {src: d/, dest: /d}]\n',
      );
      run(['key', 'generate', '--name', 'Bundle', '--email', 'bundle@example.org', '-o', 'k']);
      const lock = run(['lock', 'm.yaml'], true);
      const build = run(['build', 'm.yaml', '-o', 'o.tar'], true);
      run(['sign', 'm.yaml', '--key', 'k.secret.asc']);
      const verify = run(['verify', 'o.tar', 'm.yaml.sig', '--keyring', 'k.public.asc', '--no-rebuild'], true);
      const runs = [lock, build, verify];
      for (const [i, { imports, requires }] of runs.entries()) {
        const ours = imports.filter((f) => f.startsWith(DIST + sep)).map((f) => relative(DIST, f));
        expect(ours).toContain(join('bundle', 'main.js'));
        expect(ours.filter((f) => !f.startsWith('bundle' + sep))).toEqual([]);
        // lock and build read the manifest (verify --no-rebuild only hashes it)
        if (i < 2) expect(requires).toContain(join(DIST, 'manifest', 'schema-validator.cjs'));
        expect(requires.filter((f) => f.includes(`${sep}ajv${sep}dist${sep}core.js`))).toEqual([]);
      }
      // A build writes layers, never reads one: the decoders (fflate, fzstd: oci/decompress.ts) are not loaded.
      const decoders = build.imports.filter(
        (f) => f.startsWith(BUNDLE + sep) && /node_modules\/(fflate|fzstd)\//.test(readFileSync(f, 'utf8')),
      );
      expect(decoders).toEqual([]);
      // Neither fetches anything here: no HTTP client is loaded (fetch/http.ts loads it on the first request).
      for (const r of [lock, build]) expect(r.builtins.filter((b) => /^node:https?$/.test(b))).toEqual([]);
      expect(verify.imports.filter((f) => /node_modules\/(fflate|fzstd)\//.test(readFileSync(f, 'utf8')))).not.toEqual(
        [],
      );
      const workers = runs.flatMap((r) => r.workers);
      const names = workers.map((w) => relative(DIST, w));
      expect(names).toContain(join('stage', 'read-inputs-worker.js'));
      expect(names).toContain(join('verify', 'integrity-worker.js'));
      for (const [i, w] of workers.entries()) {
        expect(existsSync(w), `worker script ${w}`).toBe(true);
        expect(names[i]!.split(sep), `worker script ${w}: not in dist/<stage>/`).toHaveLength(2);
      }
    });

    it('a warm mkimg run loads the run entry of the bundle only: no other command, no commander, nothing from node_modules', () => {
      // o.tar (from the test above) has no program: /a.txt is not executable (126), which is enough to start the sandbox
      run(['run', 'o.tar', '/a.txt'], false, 126);
      const warm = run(['run', 'o.tar', '/a.txt'], true, 126);
      const ours = warm.imports.filter((f) => f.startsWith(DIST + sep)).map((f) => relative(DIST, f));
      expect(ours).toContain(join('bundle', 'run.js'));
      expect(ours).not.toContain(join('bundle', 'main.js'));
      expect(ours.filter((f) => !f.startsWith('bundle' + sep))).toEqual([]);
      expect([...warm.imports, ...warm.requires].filter((f) => f.includes(`${sep}node_modules${sep}`))).toEqual([]);
    });
  });
});

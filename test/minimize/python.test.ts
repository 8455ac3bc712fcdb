/**
 * Python importing 30 standard-library modules: the minimized root keeps the
 * modules, extension modules and libraries the imports load, passes the check
 * in the sandbox and under runc, and is much smaller than the full closure.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageConfig, MinimizeSpec } from '../../src/manifest/types.js';
import { layOutKeep } from '../helpers/lay-out-keep.js';
import { minimizeAndProve } from '../../src/minimize/minimize.js';
import type { StagingRoot } from '../../src/stage/types.js';
import { PY_MODULES, addPython, buildTracer, makeRoot, runcRun, scanRoot, tempDir } from '../helpers/tracer-root.js';

const SCRIPT = `import ${PY_MODULES.join(', ')}
print(json.dumps({"sha": hashlib.sha256(b"mkimg").hexdigest()[:12], "sum": str(decimal.Decimal("0.1") * 3), "n": len(${JSON.stringify(PY_MODULES)})}))
`;
const EXPECTED = '{"sha": "' + '%SHA%' + '", "sum": "0.3", "n": 30}\n';

let dir = '';
let work = '';
let root: StagingRoot;
let hasPython = false;

beforeAll(() => {
  buildTracer();
  dir = makeRoot();
  work = tempDir('mkimg-py-work-');
  hasPython = addPython(dir);
  mkdirSync(join(dir, 'app'));
  writeFileSync(join(dir, 'app/main.py'), SCRIPT);
  chmodSync(dir, 0o755);
  root = scanRoot(dir, (p) =>
    p.startsWith('/usr/lib/python3.11') || p.startsWith('/usr/bin/python') ? 'pkg:python3.11-minimal' : 'pkg:libs',
  );
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('python', () => {
  it('minimizes python3.11 importing 30 stdlib modules; the result passes its check under runc', async (ctx) => {
    if (!hasPython) ctx.skip();
    const sha = spawnSync('python3.11', ['-c', 'import hashlib;print(hashlib.sha256(b"mkimg").hexdigest()[:12])'], {
      encoding: 'utf8',
    }).stdout.trim();
    const expected = EXPECTED.replace('%SHA%', sha);
    const args = ['/usr/bin/python3.11', '/app/main.py'];
    const env = { PYTHONDONTWRITEBYTECODE: '1' };
    const config: ImageConfig = { env: { PATH: '/usr/bin' }, labels: {}, exposedPorts: [] };
    const spec: MinimizeSpec = {
      checks: [{ args, env, expect: { exitCode: 0, stdout: expected } }],
      keepGroups: [],
      keep: [],
      keepPackages: [],
      exclude: [],
      keepListed: false,
      timeoutSeconds: 60,
    };
    const r = await minimizeAndProve(root, spec, config, { workDir: work });
    for (const p of [
      '/usr/lib/python3.11/json/__init__.py',
      '/usr/lib/python3.11/decimal.py',
      '/usr/lib/python3.11/os.py',
      '/usr/lib/python3.11/encodings/utf_8.py',
    ]) {
      expect(r.keep.has(p)).toBe(true);
    }
    expect(r.keep.has('/usr/lib/python3.11/xmlrpc/client.py')).toBe(false);
    expect(r.report.after.bytes).toBeLessThan(r.report.before.bytes / 2);
    console.log(
      `python closure: ${r.report.before.files} files ${r.report.before.bytes} bytes -> minimized ${r.report.after.files} files ${r.report.after.bytes} bytes (${r.report.rounds} round(s))`,
    );

    const rootfs = join(work, 'rootfs');
    layOutKeep(root, r.keep, rootfs);
    const out = runcRun(rootfs, args, { ...config.env, ...env });
    expect(out.stderr).toBe('');
    expect(out.stdout).toBe(expected);
    expect(out.code).toBe(0);

    // the traced set is the same on a second run
    const again = await minimizeAndProve(root, spec, config, { workDir: work });
    expect([...again.keep].sort()).toEqual([...r.keep].sort());
  });
});

/**
 * Manifests that try to exhaust mkimg: many keys (linear time), many aliases
 * (fine), aliases that expand exponentially, alias cycles, deep nesting, a
 * huge file. Each is parsed quickly or refused with one manifest error
 * naming the place; none crashes or hangs.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadManifest, MANIFEST_MAX_BYTES } from '../../src/manifest/load.js';
import { MkimgError } from '../../src/util/errors.js';
import { mkimg } from '../helpers/cli.js';

const work = mkdtempSync(join(tmpdir(), 'mkimg-mlimits-'));
// rm -r handles trees deeper than PATH_MAX; fs.rmSync does not.
afterAll(() => void spawnSync('rm', ['-rf', work]));
let n = 0;
function write(text: string): string {
  const path = join(work, `m${++n}.yaml`);
  writeFileSync(path, text);
  return path;
}
const BASE = 'apiVersion: mkimg/v1\nname: test/m\nsourceDateEpoch: 1700000000\nminimize: false\n';

function errorOf(path: string): MkimgError {
  try {
    loadManifest(path);
  } catch (e) {
    expect(e).toBeInstanceOf(MkimgError);
    return e as MkimgError;
  }
  throw new Error('expected an error');
}

describe('manifest limits', () => {
  it('40,000 label keys parse in linear time', () => {
    const lines = Array.from({ length: 40_000 }, (_, i) => `    k${i}: v${i}`).join('\n');
    const p = write(`${BASE}config:\n  labels:\n${lines}\n`);
    const t0 = Date.now();
    const m = loadManifest(p);
    const ms = Date.now() - t0;
    expect(Object.keys(m.config.labels).length).toBe(40_000);
    // Quadratic was 48 s; linear is well under a second. Generous for a loaded machine.
    expect(ms).toBeLessThan(15_000);
  });

  it('a duplicate among 40,000 keys is found, with its line', () => {
    const lines = Array.from({ length: 40_000 }, (_, i) => `    k${i}: v`).join('\n');
    const p = write(`${BASE}config:\n  labels:\n${lines}\n    k7: again\n`);
    expect(errorOf(p).message).toMatch(/:40007:5: invalid YAML: Map keys must be unique \("k7" appears twice\)/);
  });

  it('a legitimate manifest with 300 aliases works', () => {
    const env = Array.from({ length: 300 }, (_, i) => `    V${i}: *val`).join('\n');
    const text = `${BASE}config:\n  labels: {a: &val "shared"}\n  env:\n${env}\n`;
    const m = loadManifest(write(text));
    expect(Object.keys(m.config.env).length).toBe(300);
    expect(m.config.env.V299).toBe('shared');
  });

  it('a "billion laughs" document is refused by its expanded size, quickly', () => {
    let text = `${BASE}x0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n`;
    for (let i = 1; i <= 9; i++)
      text += `x${i}: &a${i} [${Array(10)
        .fill(`*a${i - 1}`)
        .join(',')}]\n`;
    const t0 = Date.now();
    const e = errorOf(write(text));
    expect(e.kind).toBe('manifest');
    expect(e.message).toMatch(
      /invalid YAML: with its aliases expanded the manifest would have more than 1000000 nodes/,
    );
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it('an alias cycle, deep nesting and an oversized file are refused with one line each', () => {
    expect(errorOf(write(`${BASE}config: &c\n  labels: *c\n`)).message).toMatch(/a cycle|invalid YAML/);
    expect(errorOf(write(`${BASE}config: ${'['.repeat(100)}${']'.repeat(100)}\n`)).message).toMatch(
      /nests (deeper than 64 levels|too deeply)/,
    );
    expect(errorOf(write(`${BASE}config: ${'['.repeat(200_000)}${']'.repeat(200_000)}\n`)).message).toMatch(
      /nests (deeper than 64 levels|too deeply)|invalid YAML/,
    );
    const big = write(BASE + '#'.repeat(MANIFEST_MAX_BYTES) + '\n');
    expect(errorOf(big).message).toMatch(/the manifest is \d+ bytes, more than the 8 MiB a manifest may be/);
  });

  it('from the command line: exit 3, no stack trace', () => {
    let text = `${BASE}x0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n`;
    for (let i = 1; i <= 9; i++)
      text += `x${i}: &a${i} [${Array(10)
        .fill(`*a${i - 1}`)
        .join(',')}]\n`;
    const r = mkimg(['lock', '--check', write(text)]);
    expect(r.code).toBe(3);
    expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
  });

  it('NUL bytes, a workdir with .., a port past 65535, a bad stop signal and a uid past 2^32-2 are refused (exit 3)', () => {
    const cases: Array<[string, RegExp]> = [
      ['config:\n  entrypoint: ["/bin/sh", "a\\0b"]\n', /config\.entrypoint\[1\] contains a NUL byte/],
      ['config:\n  env: {"A\\0B": "x"}\n', /config\.env has a key with a NUL byte/],
      ['config:\n  env: {A: "x\\0y"}\n', /config\.env\.A contains a NUL byte/],
      ['config:\n  workdir: /app/../etc\n', /config\.workdir must not contain \.\./],
      ['config:\n  exposedPorts: ["70000/tcp"]\n', /config\.exposedPorts\[0\] port 70000 is not within 1-65535/],
      ['config:\n  stopSignal: "\\0"\n', /config\.stopSignal (contains a NUL byte|.* is not a signal name)/],
      ['config:\n  stopSignal: "TERM; rm"\n', /config\.stopSignal .* is not a signal name/],
      ['config:\n  user: "4294967296"\n', /config\.user 4294967296 is not a valid uid/],
    ];
    for (const [yaml, re] of cases) {
      const p = write(BASE + yaml);
      const e = errorOf(p);
      expect(e.kind).toBe('manifest');
      expect(e.message).toMatch(re);
      expect(e.message).toMatch(new RegExp(`^${p}:\\d+:\\d+: `));
    }
    // What stays valid.
    const ok = loadManifest(
      write(
        BASE +
          'config:\n  stopSignal: SIGRTMIN+3\n  user: "65534:65534"\n  exposedPorts: ["65535/udp"]\n  workdir: /srv/app\n',
      ),
    );
    expect(ok.config.stopSignal).toBe('SIGRTMIN+3');
  });

  it('a files: tree nested past PATH_MAX: lock exits 3 with one line, no stack trace', () => {
    const top = join(work, 'deep');
    let d = join(top, 'tree');
    mkdirSync(d, { recursive: true });
    // Built relative to the previous level: the absolute path passes PATH_MAX.
    const spawned = spawnSync('python3', [
      '-c',
      `import os\nos.chdir(${JSON.stringify(d)})\nfor i in range(30):\n    os.mkdir('${'d'.repeat(200)}'); os.chdir('${'d'.repeat(200)}')\nopen('f', 'w').write('x')\n`,
    ]);
    expect(spawned.status).toBe(0);
    const m = join(top, 'manifest.yaml');
    writeFileSync(m, `${BASE}files:\n  - src: tree/\n    dest: /\n`);
    const r = mkimg(['lock', m]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/^mkimg: error: tree\/: d+\.\.\. is nested too deeply: its path passes the 4095 bytes/);
    expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
    d = '';
  });
});

/**
 * A reader that goes away early (`| head -1`, `| true`) changes nothing but
 * what is printed: the exit code is the command's own, and no stack trace.
 * Real pipes, through bash, as a user would type them.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MKIMG } from '../helpers/cli.js';

let dir: string;
let stale: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mkimg-epipe-'));
  // A files: input and no lock: section: stale (exit 11), offline.
  writeFileSync(join(dir, 'a.txt'), 'a\n');
  stale = join(dir, 'stale.yaml');
  writeFileSync(
    stale,
    'apiVersion: mkimg/v1\nname: test/stale\ntag: "1"\nsourceDateEpoch: 1700000000\nfiles:\n  - src: a.txt\n    dest: /a.txt\nminimize: false\n',
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Run `mkimg ARGS 2>&1 | READER` (or only stdout into the pipe) in bash; mkimg's own exit status and what reached the terminal. */
function piped(args: string[], reader: string, bothStreams = true): { code: number; stderr: string } {
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const cmd = `${q(process.execPath)} ${q(MKIMG)} ${args.map(q).join(' ')} ${bothStreams ? '2>&1 ' : '2>"$ERRFILE" '}| ${reader} >/dev/null; echo "rc=\${PIPESTATUS[0]}"`;
  const errFile = join(dir, `err-${Math.random().toString(36).slice(2)}`);
  writeFileSync(errFile, '');
  const r = spawnSync('bash', ['-c', cmd], {
    encoding: 'utf8',
    env: { ...process.env, ERRFILE: errFile },
    timeout: 120_000,
  });
  const m = /rc=(\d+)/.exec(r.stdout);
  return { code: m ? Number(m[1]) : -1, stderr: r.stderr + require_(errFile) };
}
function require_(p: string): string {
  return spawnSync('cat', [p], { encoding: 'utf8' }).stdout;
}

describe('closed pipes', () => {
  test('lock --check of a stale lock keeps exit 11 whether the reader reads a line or none', () => {
    for (const reader of ['head -1', 'true', 'head -c 1']) {
      const r = piped(['lock', '--check', stale], reader);
      expect(r.code, reader).toBe(11);
      expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
    }
  });

  test('an invalid manifest keeps exit 3 into a closed pipe', () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'apiVersion: mkimg/v1\nname: [\n');
    for (const reader of ['head -1', 'true']) expect(piped(['lock', '--check', bad], reader).code).toBe(3);
  });

  test('help into a closed pipe exits 0; stdout closed with stderr on the terminal prints no stack trace', () => {
    expect(piped(['--help'], 'true').code).toBe(0);
    const r = piped(['lock', '--check', stale, '--json'], 'true', false);
    expect(r.code).toBe(11);
    expect(r.stderr).not.toMatch(/internal error|\n\s+at |EPIPE/);
  });
});

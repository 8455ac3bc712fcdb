/** `mkimg trace`: the command runs a program in a root and lists the paths it touched. */
import { Command } from 'commander';
import { chmodSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerTrace } from '../../src/cli/commands/trace.js';
import { buildTracer, copyWithClosure, makeRoot, tempDir } from '../helpers/tracer-root.js';

let root = '';
let work = '';

beforeAll(() => {
  buildTracer();
  root = makeRoot();
  work = tempDir('mkimg-trace-cli-');
  copyWithClosure(root, ['/usr/bin/dash', '/usr/bin/cat']);
  symlinkSync('dash', join(root, 'usr/bin/sh'));
  chmodSync(root, 0o755);
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
});

async function run(argv: string[]): Promise<{ out: string; code: number }> {
  const program = new Command().exitOverride();
  registerTrace(program);
  let out = '';
  const write = process.stdout.write.bind(process.stdout);
  const saved = process.exitCode;
  process.stdout.write = ((c: string | Uint8Array) => {
    out += String(c);
    return true;
  }) as typeof process.stdout.write;
  try {
    await program.parseAsync(['trace', ...argv], { from: 'user' });
  } finally {
    process.stdout.write = write;
  }
  const code = Number(process.exitCode ?? 0);
  process.exitCode = saved;
  return { out, code };
}

describe('mkimg trace', () => {
  it('prints exit code, output and the touched paths as JSON, and writes the raw events', async () => {
    const ev = join(work, 'ev.jsonl');
    const r = await run([
      root,
      '--json',
      '--events',
      ev,
      '-e',
      'PATH=/usr/bin',
      '--',
      'sh',
      '-c',
      'cat /etc/group; exit 4',
    ]);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.exitCode).toBe(4);
    expect(j.stdout).toBe(readFileSync(join(root, 'etc/group'), 'utf8'));
    expect(j.paths).toEqual(
      expect.arrayContaining([
        '/',
        '/usr/bin/sh',
        '/usr/bin/dash',
        '/usr/bin/cat',
        '/etc',
        '/etc/group',
        '/lib',
        '/usr/lib/x86_64-linux-gnu/libc.so.6',
      ]),
    );
    // only what exists in the root; PT_INTERP is loaded by the kernel without a syscall (the minimizer adds it statically)
    expect(j.paths).not.toContain('/etc/passwd');
    expect(j.paths).not.toContain('/usr/lib/x86_64-linux-gnu/tls');
    expect(j.paths).not.toContain('/lib64');
    const lines = readFileSync(ev, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.length).toBe(j.events);
  });

  it('rejects a bad --env with a usage error', async () => {
    const r = await run([root, '-e', 'NOEQUALS', '--', '/bin/sh']);
    expect(r.code).toBe(2);
  });
});

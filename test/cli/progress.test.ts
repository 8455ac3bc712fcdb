/**
 * Progress goes to stderr only on a terminal, never with --json or under CI
 * (SPEC §3): run the build under a pseudo-terminal with script(1).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MKIMG } from '../helpers/cli.js';
import { writeSampleProject } from '../helpers/sample-project.js';

const work = mkdtempSync(join(tmpdir(), 'mkimg-progress-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function onTerminal(args: string[], env: NodeJS.ProcessEnv): string {
  const cmd = [process.execPath, MKIMG, ...args].map((a) => `'${a}'`).join(' ');
  // script gives the command a pty for stdin/stdout/stderr and copies what it printed to our stdout.
  const r = spawnSync('script', ['-qec', `${cmd} 2>&1`, '/dev/null'], { env, encoding: 'utf8', timeout: 120_000 });
  expect(r.status, r.stdout + r.stderr).toBe(0);
  return r.stdout.replace(/\r/g, '');
}

describe('progress', () => {
  const manifest = writeSampleProject(join(work, 'proj'));
  const env = { ...process.env };
  delete env.CI;

  it('shows the stages on a terminal', () => {
    const out = onTerminal(['build', manifest, '-o', join(work, 'a.tar')], env);
    expect(out).toMatch(/^mkimg: staging: unpacking packages$/m);
    expect(out).toMatch(/^mkimg: normalize: writing image$/m);
  });

  it('is silent with --json, and under CI', () => {
    const json = onTerminal(['build', manifest, '-o', join(work, 'b.tar'), '--json'], env);
    expect(json).not.toMatch(/mkimg: staging/);
    expect(JSON.parse(json.trim()).imageId).toMatch(/^sha256:/);
    const ci = onTerminal(['build', manifest, '-o', join(work, 'c.tar')], { ...env, CI: 'true' });
    expect(ci).not.toMatch(/mkimg: staging/);
  });

  it('MKIMG_TIMINGS=1 writes every step with its time to stderr, terminal or not', () => {
    const r = spawnSync(process.execPath, [MKIMG, 'build', manifest, '-o', join(work, 'd.tar'), '--json'], {
      env: { ...env, MKIMG_TIMINGS: '1', CI: 'true' },
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(r.status, r.stderr).toBe(0);
    const steps = [...r.stderr.matchAll(/^mkimg: (\d+) ms: (.*)$/gm)].map((m) => ({ ms: Number(m[1]), step: m[2] }));
    expect(steps.map((s) => s.step)).toEqual(
      expect.arrayContaining(['staging: unpacking packages', 'normalize: writing image']),
    );
    expect(steps.map((s) => s.ms)).toEqual([...steps.map((s) => s.ms)].sort((a, b) => a - b));
    expect(JSON.parse(r.stdout).imageId).toMatch(/^sha256:/);
  });
});

/** Every command documents itself: --help exits 0 and shows examples; bad usage exits 2. */
import { describe, expect, it } from 'vitest';
import { mkimg } from '../helpers/cli.js';

const COMMANDS = ['build', 'lock', 'sign', 'key', 'verify', 'diff', 'inspect', 'push', 'pull', 'trace'];

describe('help and usage', () => {
  it('mkimg --help lists every command and a typical session', () => {
    const r = mkimg(['--help']);
    expect(r.code).toBe(0);
    for (const c of COMMANDS) expect(r.stdout).toMatch(new RegExp(`^  ${c} `, 'm'));
    expect(r.stdout).toContain('A typical session:');
  });

  it.each(COMMANDS.filter((c) => c !== 'key'))('mkimg %s --help shows usage and examples', (c) => {
    const r = mkimg([c, '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^Usage: mkimg ${c} `));
    expect(r.stdout).toMatch(/Examples?:/);
  });

  it('an unknown command or a missing argument exits 2 with a hint', () => {
    const u = mkimg(['bulid']);
    expect(u.code).toBe(2);
    expect(u.stderr).toMatch(/unknown command 'bulid'/);
    const m = mkimg(['build']);
    expect(m.code).toBe(2);
    expect(m.stderr).toMatch(/missing required argument 'manifest'/);
  });

  it('--version prints the package version', () => {
    const r = mkimg(['--version']);
    expect(r).toMatchObject({ code: 0, stdout: '0.1.0\n' });
  });
});

/**
 * exitWhenIdle (src/cli/exit.ts), in a real Node.js process: it exits at
 * once only when nothing is pending, keeping the exit code; pending work
 * (a timer, a child process, a file write) still finishes first.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../helpers/cli.js';

const EXIT = pathToFileURL(join(PROJECT_ROOT, 'dist', 'cli', 'exit.js')).href;

/** Runs `body` then exitWhenIdle(), with process.exit reporting itself on stderr. */
function run(body: string) {
  const script = `
import { exitWhenIdle } from ${JSON.stringify(EXIT)};
const exit = process.exit;
process.exit = (...a) => { process.stderr.write('[exit() called]'); exit(...a); };
process.on('exit', (c) => process.stderr.write('[exit handler ' + c + ']'));
${body}
exitWhenIdle();
`;
  return spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
}

describe('exitWhenIdle', () => {
  it('exits at once when nothing is pending, with the exit code set and the exit handlers run', () => {
    const r = run("process.exitCode = 3; process.stdout.write('done');");
    expect([r.status, r.stdout, r.stderr]).toEqual([3, 'done', '[exit() called][exit handler 3]']);
  });

  it('exits once output bigger than a pipe holds is all written', () => {
    const r = run("process.stdout.write('x'.repeat(1 << 18)); process.stderr.write('e'.repeat(1 << 18));");
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('x'.repeat(1 << 18));
    expect(r.stderr).toBe(`${'e'.repeat(1 << 18)}[exit() called][exit handler 0]`);
  });

  it('leaves a pending timer, child process or file write to finish, and Node.js to exit after them', () => {
    const r = run(`
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
process.exitCode = 4;
setTimeout(() => process.stdout.write('timer '), 50);
spawn('true').on('exit', () => process.stdout.write('child '));
writeFile('/dev/null', 'x').then(() => process.stdout.write('write '));
`);
    expect(r.status).toBe(4);
    expect(r.stdout.split(' ').sort()).toEqual(['', 'child', 'timer', 'write']);
    expect(r.stderr).toBe('[exit handler 4]');
  });
});

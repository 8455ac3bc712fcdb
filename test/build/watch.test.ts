/**
 * `mkimg build --watch` (SPEC §3 "build --watch"): one build at start, one
 * more per change of an input (re-pinned first) or of the manifest, each
 * with the bytes a fresh `mkimg build` of the same manifest gives; a folder
 * added to an input tree (or removed and made again) is watched from the next build on; an edit made
 * during a build is built after it; a broken
 * manifest or a failing check is reported (its exit code in the JSON line)
 * and the watch goes on; the manifest's own rewrite and the image written
 * beside it start no build; flags that would publish or need a signature
 * are refused; a signal ends it, leaving no temporary behind.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MKIMG, mkimg, PROJECT_ROOT } from '../helpers/cli.js';
import { writeSampleProject } from '../helpers/sample-project.js';

let work: string;
let proj: string;
let manifest: string;
let cacheDir: string;

const sha256 = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'mkimg-watch-'));
  proj = join(work, 'proj');
  manifest = writeSampleProject(proj, { minimize: true });
  cacheDir = join(work, 'cache');
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A running `build --watch --json`: its JSON lines, one per build, as they come. */
class Watch {
  readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: Record<string, unknown>[] = [];
  private waiters: (() => void)[] = [];
  stderr = '';
  constructor(args: string[]) {
    this.child = spawn(process.execPath, [MKIMG, 'build', manifest, ...args, '--watch', '--json'], {
      cwd: PROJECT_ROOT,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let buf = '';
    this.child.stdout.on('data', (d: Buffer) => {
      buf += d.toString('utf8');
      for (let i; (i = buf.indexOf('\n')) >= 0; ) {
        this.lines.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
        buf = buf.slice(i + 1);
        for (const w of this.waiters.splice(0)) w();
      }
    });
    this.child.stderr.on('data', (d: Buffer) => (this.stderr += d.toString('utf8')));
  }
  /** The n-th result (0-based), waiting for it at most `ms`. */
  async result(n: number, ms = 60_000): Promise<Record<string, unknown>> {
    const end = Date.now() + ms;
    while (this.lines.length <= n) {
      if (Date.now() > end) throw new Error(`no result ${n} after ${ms} ms; stderr: ${this.stderr}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 200);
      });
    }
    return this.lines[n]!;
  }
  get count(): number {
    return this.lines.length;
  }
  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
      this.child.on('close', (code, signal) => r({ code, signal })),
    );
    this.child.kill('SIGTERM');
    return done;
  }
}

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Until no build has come for 2.5 s. */
async function quiet(w: Watch): Promise<void> {
  for (let n = -1; n !== w.count; ) {
    n = w.count;
    await settle(2500);
  }
}

describe('mkimg build --watch', () => {
  it('builds at start and after each change, with the bytes of a fresh build; goes on after errors', async () => {
    const out = join(proj, 'image.tar'); // beside the manifest, in a watched folder: no build of its own
    const w = new Watch(['-o', out, '--cache-dir', cacheDir, '--work-dir', work]);
    try {
      const first = await w.result(0);
      expect(first).toMatchObject({ imageId: expect.stringMatching(/^sha256:/), repinned: [] });
      expect(typeof first.seconds).toBe('number');
      // Nothing changed since: no second build (the image written, the manifest untouched).
      await settle(1500);
      expect(w.count).toBe(1);

      // An edit of an input: re-pinned and built once (the re-pin's rewrite of the manifest starts no other build).
      appendFileSync(join(proj, 'app', 'run.sh'), '# edited\n');
      const second = await w.result(1);
      expect(second).toMatchObject({ repinned: ['app/'] });
      expect(second.imageId).not.toBe(first.imageId);
      await settle(1500);
      expect(w.count).toBe(2);
      const fresh = join(work, 'fresh.tar');
      const built = mkimg(['build', manifest, '-o', fresh, '--cache-dir', join(work, 'cache-fresh'), '--json']);
      expect(built.code, built.stderr).toBe(0);
      expect(sha256(out)).toBe(sha256(fresh));

      // A folder added to the tree: built, and watched from then on.
      mkdirSync(join(proj, 'app', 'new'));
      writeFileSync(join(proj, 'app', 'new', 'a.txt'), 'a\n');
      const third = await w.result(2);
      expect(third.imageId).not.toBe(second.imageId);
      await settle(500);
      const before = w.count;
      writeFileSync(join(proj, 'app', 'new', 'a.txt'), 'b\n');
      const fourth = await w.result(before);
      expect(fourth.imageId).not.toBe(third.imageId);
      // That folder removed and made again (another folder, at the same path): watched anew.
      rmSync(join(proj, 'app', 'new'), { recursive: true });
      mkdirSync(join(proj, 'app', 'new'));
      writeFileSync(join(proj, 'app', 'new', 'a.txt'), 'b\n');
      await quiet(w);
      const remade = w.count;
      writeFileSync(join(proj, 'app', 'new', 'a.txt'), 'c\n');
      const fifth = await w.result(remade);
      expect(fifth.imageId).not.toBe(fourth.imageId);

      // A broken manifest: its error (exit code 3) as the build's line, the watch goes on; fixed, built again.
      const text = readFileSync(manifest, 'utf8');
      writeFileSync(manifest, text.replace('apiVersion: mkimg/v1', 'apiVersion: [mkimg/v1'));
      const broken = await w.result(remade + 1);
      expect(broken).toMatchObject({ error: { kind: 'manifest', exitCode: 3 } });
      writeFileSync(manifest, text);
      const fixed = await w.result(remade + 2);
      expect(fixed.imageId).toBe(fifth.imageId);
      expect(w.child.exitCode).toBeNull();

      // An edit made while a build runs is not lost: once quiet, the image is the final content's
      // (a fresh build of the manifest, which must then be locked to it, gives the same bytes).
      // (The first edit makes the check take ~0.7 s, twice a build: the second lands during that build.)
      appendFileSync(join(proj, 'app', 'run.sh'), 'i=0; while [ $i -lt 600000 ]; do i=$((i+1)); done\n');
      await settle(600);
      appendFileSync(join(proj, 'app', 'run.sh'), '# while building\n');
      await quiet(w);
      const again = join(work, 'again.tar');
      const rebuilt = mkimg(['build', manifest, '-o', again, '--cache-dir', join(work, 'cache-fresh'), '--json']);
      expect(rebuilt.code, rebuilt.stderr).toBe(0);
      expect(sha256(out)).toBe(sha256(again));
    } finally {
      const end = await w.stop();
      // Ended by the signal (as any long-running command), with nothing half-written left beside the image.
      expect(end.signal === 'SIGTERM' || end.code === 143).toBe(true);
      expect(readdirSync(proj).filter((n) => n.startsWith('.image.tar'))).toEqual([]);
    }
  }, 180_000);

  it('refuses what would publish every edit or needs a signed manifest (exit 2)', () => {
    for (const [flag, value] of [
      ['--push', 'localhost:5000/x/y:1'],
      ['--cache-registry', 'localhost:5000/cache'],
      ['--require-signature', undefined],
    ] as const) {
      const r = mkimg(['build', manifest, '-o', join(work, 'x.tar'), '--watch', flag, ...(value ? [value] : [])], {
        env: { ...process.env, MKIMG_KEYRING: join(work, 'none.asc') },
      });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(`--watch cannot go with ${flag}`);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  });
});

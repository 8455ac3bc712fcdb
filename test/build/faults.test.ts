/**
 * A build meets a failing machine or a signal: disk full on -o or --work-dir
 * is one environment line (exit 15) and leaves nothing; SIGINT/SIGTERM remove
 * the staging root and the temporary beside -o; a killed build's temporaries
 * (pid in the name) are collected by the next build.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MKIMG, mkimg } from '../helpers/cli.js';
import { writeSampleProject } from '../helpers/sample-project.js';

const isRoot = process.getuid?.() === 0;
let work: string;
let manifest: string;
const mounts: string[] = [];

function tmpfs(dir: string, size: string): void {
  mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
  mounts.push(dir);
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'mkimg-bfaults-'));
  manifest = writeSampleProject(join(work, 'proj'));
}, 120_000);
afterAll(() => {
  for (const m of mounts.reverse()) spawnSync('umount', [m]);
  rmSync(work, { recursive: true, force: true });
});

function deadPid(): number {
  return Number(spawnSync('sh', ['-c', 'echo $$']).stdout.toString().trim());
}

describe('disk full', () => {
  it.runIf(isRoot)('on -o: exit 15, one line, no image and no temporary', () => {
    const out = join(work, 'out-full');
    tmpfs(out, '256k');
    const staging = join(work, 'staging-1');
    mkdirSync(staging);
    const r = mkimg(['build', manifest, '-o', join(out, 'image.tar'), '--work-dir', staging]);
    expect(r.code).toBe(15);
    expect(r.stderr).toMatch(/^mkimg: error: cannot write .*image\.tar: no space left on the device \(ENOSPC/);
    expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
    expect(readdirSync(out)).toEqual([]);
    expect(readdirSync(staging)).toEqual([]);
  });

  it.runIf(isRoot)('on --work-dir: exit 15, one line, nothing left', () => {
    const staging = join(work, 'staging-full');
    tmpfs(staging, '64k');
    const out = join(work, 'out-2');
    mkdirSync(out);
    const r = mkimg(['build', manifest, '-o', join(out, 'image.tar'), '--work-dir', staging]);
    // The index-only path writes little; a minimized build stages every file.
    const m2 = join(work, 'proj', 'minimized.yaml');
    writeFileSync(m2, readFileSync(manifest, 'utf8').replace('minimize: false\n', ''));
    const r2 = mkimg(['lock', m2]);
    expect(r2.code).toBe(0);
    const r3 = mkimg(['build', m2, '-o', join(out, 'image.tar'), '--work-dir', staging]);
    for (const x of [r, r3].filter((x) => x.code !== 0)) {
      expect(x.code).toBe(15);
      expect(x.stderr).toMatch(/^mkimg: error: .*staging-full.*: no space left on the device \(ENOSPC/);
      expect(x.stderr).not.toMatch(/internal error|\n\s+at /);
    }
    expect(r3.code).toBe(15);
    expect(readdirSync(staging)).toEqual([]);
  });
});

describe('signals and killed builds', () => {
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    it(`${sig} during a build removes the staging root and leaves no output temporary`, async () => {
      const staging = join(work, `staging-${sig}`);
      const out = join(work, `out-${sig}`);
      mkdirSync(staging);
      mkdirSync(out);
      const child = spawn(
        process.execPath,
        [MKIMG, 'build', manifest, '-o', join(out, 'image.tar'), '--work-dir', staging],
        { stdio: 'ignore' },
      );
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
        child.on('close', (code, signal) => r({ code, signal })),
      );
      // Kill it once its staging root exists (it is unpacking).
      const deadline = Date.now() + 60_000;
      while (readdirSync(staging).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      expect(readdirSync(staging).length).toBe(1);
      child.kill(sig);
      const r = await exited;
      // Either the signal ended it (the usual case) or it had just finished.
      if (r.signal === null) expect(r.code).toBe(0);
      else expect(r.signal).toBe(sig);
      expect(readdirSync(staging)).toEqual([]);
      expect(readdirSync(out).filter((n) => n !== 'image.tar')).toEqual([]);
    }, 120_000);
  }

  it('the next build collects staging roots and output temporaries of dead builds, not of live ones', () => {
    const staging = join(work, 'staging-stale');
    const out = join(work, 'out-stale');
    mkdirSync(staging);
    mkdirSync(out);
    const dead = deadPid();
    mkdirSync(join(staging, `mkimg-stage-${dead}-AbC123`, 'root', 'usr'), { recursive: true });
    mkdirSync(join(staging, 'mkimg-stage-1-AbC123'));
    writeFileSync(join(out, `.image.tar.${dead}.lk2.tmp`), 'partial');
    writeFileSync(join(out, '.image.tar.1.lk2.tmp'), 'partial');
    writeFileSync(join(out, `.other.tar.${dead}.lk2.tmp`), 'not this output');
    const r = mkimg(['build', manifest, '-o', join(out, 'image.tar'), '--work-dir', staging]);
    expect(r.code).toBe(0);
    expect(readdirSync(staging)).toEqual(['mkimg-stage-1-AbC123']);
    expect(readdirSync(out).sort()).toEqual(['.image.tar.1.lk2.tmp', `.other.tar.${dead}.lk2.tmp`, 'image.tar']);
  });
});

describe("the SBOM's folder", () => {
  for (const [what, extra] of [
    ['with an input read in place after it (the SBOM reserved)', true],
    ['alone', false],
  ] as const) {
    it(`a files: tree that makes /usr/share/mkimg a symlink is refused, ${what}`, () => {
      const proj = join(work, `sbomlink-${extra}`);
      mkdirSync(join(proj, 'tree', 'usr', 'share', 'doc'), { recursive: true });
      symlinkSync('doc', join(proj, 'tree', 'usr', 'share', 'mkimg'));
      if (extra) writeFileSync(join(proj, 'tree', 'zz.txt'), 'z\n');
      const m = join(proj, 'manifest.yaml');
      writeFileSync(
        m,
        'apiVersion: mkimg/v1\nname: test/sbomlink\ntag: "1"\nsourceDateEpoch: 1700000000\nfiles:\n  - src: tree/\n    dest: /\nminimize: false\n',
      );
      expect(mkimg(['lock', m]).code).toBe(0);
      const r = mkimg(['build', m, '-o', join(proj, 'image.tar')]);
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(
        /^mkimg: error: \/usr\/share\/mkimg: the files: input .* makes it a symlink, but mkimg writes the image's SBOM at \/usr\/share\/mkimg\/sbom\.spdx\.json/,
      );
      expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
    });
  }
});

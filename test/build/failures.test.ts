/**
 * A failed build leaves nothing behind: no image, no temporary file beside
 * the output, no staging root; and it exits with the documented code.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkimg, mkimgJson } from '../helpers/cli.js';
import { writeSampleProject } from '../helpers/sample-project.js';

const work = mkdtempSync(join(tmpdir(), 'mkimg-fail-'));
let manifest: string;
beforeAll(() => {
  manifest = writeSampleProject(join(work, 'proj'), { minimize: true });
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

function attempt(
  name: string,
  edit: (text: string) => string,
  extra: (dir: string) => string[] = () => [],
): { code: number; stderr: string; out: string; staging: string } {
  const dir = join(work, name);
  mkdirSync(dir);
  const m = join(work, 'proj', `${name}.yaml`);
  writeFileSync(m, edit(readFileSync(manifest, 'utf8')));
  const staging = join(dir, 'staging');
  mkdirSync(staging);
  const out = join(dir, 'out');
  mkdirSync(out);
  const r = mkimg(['build', m, '-o', join(out, 'image.tar'), '--work-dir', staging, ...extra(dir)]);
  return { code: r.code, stderr: r.stderr, out, staging };
}

describe('failed builds', () => {
  it('a local .deb that is not the pinned one: exit 4, nothing written', () => {
    const r = attempt('badsha', (t) => t.replace(/sha256: "[0-9a-f]{64}"/, `sha256: "${'1'.repeat(64)}"`));
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(
      /^mkimg: error: .*hello-busybox_1\.0_amd64\.deb: sha256 is [0-9a-f]{64}, the manifest pins 1{64}\n/,
    );
    expect(readdirSync(r.out)).toEqual([]);
    expect(readdirSync(r.staging)).toEqual([]);
  });

  it('a check that fails in the full root: exit 10, the manifest is named as wrong, nothing written', () => {
    const r = attempt('badcheck', (t) =>
      t.replace(
        'config:\n',
        'minimize:\n  checks:\n    - args: ["/app/run.sh"]\n      expect: {exitCode: 0, stdout: "something else\\n"}\nconfig:\n',
      ),
    );
    expect(r.code).toBe(10);
    expect(r.stderr).toMatch(/fails in the full, unminimized root, so the manifest's check is wrong/);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(readdirSync(r.out)).toEqual([]);
    expect(readdirSync(r.staging)).toEqual([]);
  });

  it('a minimized build with the default check (the entrypoint) works and keeps only what runs', () => {
    const r = attempt(
      'ok',
      (t) => t,
      (dir) => ['--sbom', join(dir, 'sbom.json'), '--report', join(dir, 'report.json')],
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(readdirSync(r.out)).toEqual(['image.tar']);
    expect(readdirSync(r.staging)).toEqual([]);
    const inspected = mkimgJson<{ files: { path: string }[] }>(['inspect', join(r.out, 'image.tar'), '--files']);
    const paths = inspected.json.files.map((f) => f.path);
    // What the entrypoint touches: the script, its #! interpreter through the merged-/usr link, busybox.
    expect(paths).toEqual(expect.arrayContaining(['/app/run.sh', '/bin', '/usr/bin/sh', '/usr/bin/busybox']));
    // What it does not: the rest of app/. Of the package's docs only the
    // copyright file stays, for license scanners (SPEC §10).
    expect(paths).not.toContain('/app/README');
    expect(paths).not.toContain('/app/static/index.html');
    expect(paths).toContain('/usr/share/doc/hello-busybox/copyright');
    // --sbom writes the SBOM stored in the image; --report the minimization report.
    const sbom = JSON.parse(readFileSync(join(r.out, '..', 'sbom.json'), 'utf8'));
    expect(sbom.spdxVersion).toBe('SPDX-2.3');
    const fromImage = join(r.out, '..', 'sbom-from-image.json');
    expect(mkimg(['inspect', join(r.out, 'image.tar'), '--sbom', fromImage]).code).toBe(0);
    expect(readFileSync(fromImage, 'utf8')).toBe(readFileSync(join(r.out, '..', 'sbom.json'), 'utf8'));
    const report = JSON.parse(readFileSync(join(r.out, '..', 'report.json'), 'utf8'));
    expect(report.after.files).toBeLessThan(report.before.files);
    expect(report.checks[0].args).toEqual(['/app/run.sh']);
  });
});

/**
 * The final image must be able to start its command, whether or not a check
 * ran it; minimize.keepPackages keeps whole packages. Real builds of local
 * .debs made with dpkg-deb (no network).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeDeb } from '../helpers/make-deb.js';
import { mkimg } from '../helpers/cli.js';
import { inspectImage } from '../../src/inspect/inspect.js';
import { elfInterpreter } from '../../src/minimize/entrypoint.js';
import { readFileSync } from 'node:fs';

const work = mkdtempSync(join(tmpdir(), 'mkimg-entrypoint-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

let debs = '';

beforeAll(() => {
  mkdirSync(join(work, 'vendor'));
  const tools = makeDeb(join(work, 'vendor'), {
    name: 'tools',
    files: {
      '/usr/bin/busybox': { copyFrom: '/bin/busybox', mode: 0o755 },
      '/usr/bin/sh': { symlink: 'busybox' },
      '/usr/bin/dangling': { symlink: '/usr/bin/nothere' },
      '/usr/bin/notexec': { content: '#!/usr/bin/sh\necho hi\n', mode: 0o644 },
      '/usr/bin/needs-python': { content: '#!/usr/bin/python3\nprint(1)\n', mode: 0o755 },
      '/usr/bin/run-sh': { content: '#!/usr/bin/sh\necho ran\n', mode: 0o755 },
      // a dynamically linked program whose loader (/lib64/ld-linux-x86-64.so.2) no package ships
      '/usr/bin/dynamic': { copyFrom: '/usr/bin/true', mode: 0o755 },
      '/usr/lib/tools/plugin.txt': 'plugin\n',
      '/usr/share/doc/tools/copyright': 'test\n',
    },
  });
  const extras = makeDeb(join(work, 'vendor'), {
    name: 'extras',
    files: {
      '/usr/share/extras/data.txt': 'loaded by name at run time\n',
      '/usr/share/doc/extras/copyright': 'test\n',
    },
  });
  debs = [tools, extras].map((d) => `  - deb: vendor/${d.path.split('/').pop()}\n    sha256: "${d.sha256}"`).join('\n');
});

function project(name: string, config: string, minimize: string): string {
  const manifest = join(work, `${name}.yaml`);
  writeFileSync(
    manifest,
    `apiVersion: mkimg/v1\nname: test/${name}\nsourceDateEpoch: 1700000000\npackages:\n${debs}\nconfig:\n${config}\n${minimize}\n`,
  );
  const l = mkimg(['lock', manifest]);
  if (l.code !== 0) throw new Error(`lock ${name}: ${l.stderr}`);
  return manifest;
}

function build(manifest: string): { code: number; stderr: string; out: string } {
  const out = manifest.replace(/\.yaml$/, '.tar');
  const r = mkimg(['build', manifest, '-o', out, '--cache-dir', join(work, 'cache')]);
  return { code: r.code, stderr: r.stderr, out };
}

describe('the image can start its command (exit 10 otherwise, naming the field)', () => {
  const cases: [string, string, RegExp][] = [
    [
      'missing',
      '  entrypoint: ["/usr/bin/nope"]',
      /config\.entrypoint\[0\] "\/usr\/bin\/nope" does not exist in the image/,
    ],
    ['directory', '  entrypoint: ["/usr/lib/tools"]', /config\.entrypoint\[0\] "\/usr\/lib\/tools" is a directory/],
    [
      'dangling',
      '  entrypoint: ["/usr/bin/dangling"]',
      /config\.entrypoint\[0\] "\/usr\/bin\/dangling" is a dangling symlink: \/usr\/bin\/nothere is not in the image/,
    ],
    [
      'notexec',
      '  entrypoint: ["/usr/bin/notexec"]',
      /config\.entrypoint\[0\] "\/usr\/bin\/notexec" is not executable \(mode 0644\)/,
    ],
    [
      'nointerp',
      '  entrypoint: ["/usr/bin/needs-python"]',
      /config\.entrypoint\[0\] "\/usr\/bin\/needs-python" needs the #! interpreter \/usr\/bin\/python3, which does not exist/,
    ],
    [
      'noloader',
      '  entrypoint: ["/usr/bin/dynamic"]',
      /config\.entrypoint\[0\] "\/usr\/bin\/dynamic" needs the ELF loader \/lib64\/ld-linux-x86-64\.so\.2/,
    ],
    ['cmd-only', '  cmd: ["nope", "x"]', /config\.cmd\[0\] "nope" is not on the image's PATH/],
  ];
  for (const [name, config, message] of cases) {
    it(`${name}, with minimize: false`, () => {
      const r = build(project(`ep-${name}`, config, 'minimize: false'));
      expect(r.code, r.stderr).toBe(10);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toMatch(/mkimg: hint: /);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    });
  }

  it('a bare name found on PATH, a script whose interpreter is there: the build succeeds', () => {
    expect(build(project('ep-ok', '  entrypoint: ["run-sh"]', 'minimize: false')).code).toBe(0);
  });

  it('with minimize checks that never run the entrypoint, the minimized image is checked too', () => {
    const checks = 'minimize:\n  checks:\n    - args: ["/usr/bin/busybox", "true"]\n      expect: {exitCode: 0}';
    const bad = build(project('ep-min-bad', '  entrypoint: ["/usr/bin/run-sh"]', checks));
    expect(bad.code, bad.stderr).toBe(10);
    // run-sh exists in the full root but the checks never touched it: minimized away
    expect(bad.stderr).toMatch(/config\.entrypoint\[0\] "\/usr\/bin\/run-sh" does not exist in the image/);
  });

  it('reads PT_INTERP from ELF files', () => {
    expect(elfInterpreter(readFileSync('/usr/bin/true'))).toBe('/lib64/ld-linux-x86-64.so.2');
    expect(elfInterpreter(readFileSync('/bin/busybox'))).toBeUndefined(); // static
    expect(elfInterpreter(Buffer.from('#!/bin/sh\n'))).toBeUndefined();
  });
});

describe('minimize.keepPackages', () => {
  const checks = (extra: string) =>
    `minimize:\n  checks:\n    - args: ["/usr/bin/busybox", "true"]\n      expect: {exitCode: 0}\n${extra}`;

  it('keeps every file of the named package, which no check touched', async () => {
    const without = build(project('kp-without', '  entrypoint: ["/usr/bin/busybox"]', checks('')));
    expect(without.code, without.stderr).toBe(0);
    const kept = build(project('kp-with', '  entrypoint: ["/usr/bin/busybox"]', checks('  keepPackages: [extras]')));
    expect(kept.code, kept.stderr).toBe(0);
    const paths = async (tar: string) => (await inspectImage(tar, { files: true })).files!.map((f) => f.path);
    expect(await paths(without.out)).not.toContain('/usr/share/extras/data.txt');
    const withFiles = await inspectImage(kept.out, { files: true });
    expect(withFiles.files!.find((f) => f.path === '/usr/share/extras/data.txt')?.package).toBe('extras');
    expect(withFiles.sbom!.packages.map((p) => p.name)).toContain('extras');
  });

  it('a name outside the package closure is exit 3 naming the field', () => {
    const r = build(
      project('kp-bad', '  entrypoint: ["/usr/bin/busybox"]', checks('  keepPackages: [extras, libpython3.11-stdlib]')),
    );
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(
      /minimize\.keepPackages\[1\]: package "libpython3\.11-stdlib" is not in the image's package closure/,
    );
  });
});

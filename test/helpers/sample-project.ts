/**
 * A small, fully local project for end-to-end builds: a .deb made with
 * dpkg-deb holding the host's static busybox (as sh and echo), an app/ tree
 * with an executable script, and a locked manifest. No network needed.
 */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeDeb } from './make-deb.js';
import { mkimg } from './cli.js';

export const SAMPLE_TAG = '1.0';

export function writeSampleApp(dir: string, reverse = false): void {
  mkdirSync(join(dir, 'app', 'static', 'css'), { recursive: true });
  const files: Array<[string, string, number]> = [
    ['app/run.sh', '#!/bin/sh\necho "hello from $0"\n', 0o775],
    ['app/static/index.html', '<h1>hi</h1>\n', 0o664],
    ['app/static/css/site.css', 'body{}\n', 0o600],
    ['app/README', 'readme\n', 0o644],
  ];
  for (const [p, c, m] of reverse ? [...files].reverse() : files) {
    writeFileSync(join(dir, p), c);
    chmodSync(join(dir, p), m);
  }
}

/**
 * Adds app/big.bin, `bytes` of text-like data (deterministic), to a sample project and locks it
 * again: a `files:` layer past 8 MiB is compressed in pieces (several gzip members, several zstd
 * frames) on the compression threads.
 */
export function addBigInput(dir: string, manifest: string, bytes = 9 << 20): void {
  const big = Buffer.alloc(bytes);
  let x = 1;
  for (let i = 0; i < big.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    big[i] = 97 + ((x >>> 16) % (i % 4096 < 2048 ? 4 : 26));
  }
  writeFileSync(join(dir, 'app', 'big.bin'), big);
  const locked = mkimg(['lock', manifest]);
  if (locked.code !== 0) throw new Error(`mkimg lock failed (${locked.code}): ${locked.stderr}`);
}

/** Writes the project into `dir`, locks it, and returns the manifest path. */
export function writeSampleProject(dir: string, opts: { minimize?: boolean; extraYaml?: string } = {}): string {
  mkdirSync(join(dir, 'vendor'), { recursive: true });
  writeSampleApp(dir);
  const deb = makeDeb(join(dir, 'vendor'), {
    name: 'hello-busybox',
    files: {
      '/usr/bin/busybox': { copyFrom: '/bin/busybox', mode: 0o755 },
      '/usr/bin/sh': { symlink: 'busybox' },
      '/usr/bin/echo': { symlink: 'busybox' },
      '/usr/share/doc/hello-busybox/copyright': 'test\n',
      // a file nothing runs: minimization removes it (mkimg run --explain names it)
      '/usr/share/doc/hello-busybox/README': 'readme\n',
    },
  });
  const manifest = join(dir, 'manifest.yaml');
  writeFileSync(
    manifest,
    `# yaml-language-server: $schema=../../manifests/mkimg-v1.schema.json
apiVersion: mkimg/v1
name: test/sample
tag: "${SAMPLE_TAG}"
sourceDateEpoch: 1700000000
packages:
  - deb: vendor/${deb.path.split('/').pop()}
    sha256: "${deb.sha256}"
files:
  - src: app/
    dest: /app
config:
  entrypoint: ["/app/run.sh"]
  env: {LANG: C.UTF-8}
  labels: {org.example.team: build}
  exposedPorts: ["8080/tcp"]
${opts.minimize ? '' : 'minimize: false\n'}${opts.extraYaml ?? ''}`,
  );
  const locked = mkimg(['lock', manifest]);
  if (locked.code !== 0 || !/\nlock:\n {2}version: 1\n/.test(readFileSync(manifest, 'utf8'))) {
    throw new Error(`mkimg lock failed (${locked.code}): ${locked.stderr}`);
  }
  return manifest;
}

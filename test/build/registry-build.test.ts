/**
 * `mkimg build --push` and `--cache-registry` against a real docker-registry:
 * the second machine state (fresh cache, other folder) pulls instead of
 * building, and gets the same bytes.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkimgJson, mkimgJsonAsync } from '../helpers/cli.js';
import {
  skopeo,
  startProxy,
  startRegistry,
  uploadRequests,
  type TestProxy,
  type TestRegistry,
} from '../helpers/registry.js';
import { writeSampleProject } from '../helpers/sample-project.js';
import { sha256Hex } from '../../src/util/digest.js';

const work = mkdtempSync(join(tmpdir(), 'mkimg-regbuild-'));
let registry: TestRegistry;
let proxy: TestProxy;
let manifest: string;

beforeAll(async () => {
  registry = await startRegistry();
  proxy = await startProxy(registry.host);
  manifest = writeSampleProject(join(work, 'proj'));
});
afterAll(async () => {
  await proxy?.stop();
  await registry?.stop();
  rmSync(work, { recursive: true, force: true });
});

interface BuildJson {
  imageId: string;
  manifestDigest: string;
  output: string;
  cache?: string;
  pushed?: { reference: string; manifestDigest: string };
}

describe('build with a registry', () => {
  it('--push publishes what skopeo sees with the same digests', () => {
    const out = join(work, 'pushed.tar');
    const ref = `${registry.host}/team/sample:1.0`;
    const r = mkimgJson<BuildJson>(['build', manifest, '-o', out, '--push', ref]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.json.pushed).toMatchObject({ manifestDigest: r.json.manifestDigest });
    const raw = skopeo(['inspect', '--tls-verify=false', '--raw', `docker://${ref}`]);
    expect(raw.code).toBe(0);
    expect(`sha256:${sha256Hex(Buffer.from(raw.stdout))}`).toBe(r.json.manifestDigest);
    expect(JSON.parse(raw.stdout).config.digest).toBe(r.json.imageId);
  });

  it('--cache-registry builds once: a second machine state pulls the same bytes', async () => {
    const repo = `${proxy.host}/mkimg-cache`;
    const first = join(work, 'first.tar');
    const a = await mkimgJsonAsync<BuildJson>(['build', manifest, '-o', first, '--cache-registry', repo], {
      env: { ...process.env, XDG_CACHE_HOME: join(work, 'c1') },
    });
    expect({ code: a.code, stderr: a.stderr }).toEqual({ code: 0, stderr: '' });
    expect(a.json.cache).toBe('published');

    proxy.log.length = 0;
    const otherDir = mkdtempSync(join(tmpdir(), 'mkimg-regbuild-other-'));
    const second = join(otherDir, 'second.tar');
    const b = await mkimgJsonAsync<BuildJson>(['build', manifest, '-o', second, '--cache-registry', repo], {
      cwd: otherDir,
      env: { ...process.env, XDG_CACHE_HOME: join(work, 'c2') },
    });
    expect({ code: b.code, stderr: b.stderr }).toEqual({ code: 0, stderr: '' });
    expect(b.json.cache).toBe('hit');
    expect(b.json.imageId).toBe(a.json.imageId);
    expect(sha256Hex(readFileSync(second))).toBe(sha256Hex(readFileSync(first)));
    // A hit downloads and uploads nothing new.
    expect(uploadRequests(proxy.log)).toEqual([]);
    rmSync(otherDir, { recursive: true, force: true });
  });

  it('a cache registry that is down costs a build, not the result: exit 0 with a warning', async () => {
    const out = join(work, 'down.tar');
    const r = await mkimgJsonAsync<BuildJson & { warnings: string[] }>([
      'build',
      manifest,
      '-o',
      out,
      '--cache-registry',
      '127.0.0.1:1/nowhere',
    ]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(r.json.cache).toBe('unavailable');
    expect(r.json.warnings.join('\n')).toMatch(/cache registry 127\.0\.0\.1:1\/nowhere: lookup failed; built instead/);
    expect(readFileSync(out).length).toBe(readFileSync(join(work, 'first.tar')).length);
  });
});

/**
 * Images of several compressed layers in the tools people run them with:
 * `podman load` + `podman run`, `buildah from oci-archive:` + `buildah run`,
 * and Docker (`dockerd` started here with its own data root, stopped by its
 * pid) `docker load` + `docker run`, for a per-package image with gzip and
 * with zstd layers, one of them past 8 MiB (several gzip members, several
 * zstd frames). Each prints what the image's script prints and reads the big
 * file whole. A tool that is not installed skips its test, saying so.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkimgJson } from '../helpers/cli.js';
import { addBigInput, writeSampleProject } from '../helpers/sample-project.js';

const have = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
const work = mkdtempSync(join(tmpdir(), 'mkimg-tools-'));
const images: Record<'gzip' | 'zstd', string> = { gzip: '', zstd: '' };
const ULIMITS = ['--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'];
/** The app's script, then the big file's sha256 read inside the container (busybox's sha256sum). */
const SCRIPT = '/app/run.sh && /usr/bin/busybox sha256sum /app/big.bin';
const RUN = ['/usr/bin/sh', '-c', SCRIPT];
/** The same through the image's runtime (podman, docker run): the shell in place of the entrypoint. */
const RUN_IMAGE = (ref: string) => ['--entrypoint', '/usr/bin/sh', ref, '-c', SCRIPT];
let EXPECTED = '';
const REF = 'docker.io/test/sample:1.0';

beforeAll(() => {
  for (const c of ['gzip', 'zstd'] as const) {
    const manifest = writeSampleProject(join(work, `proj-${c}`), {
      extraYaml: `layering: {strategy: per-package, budget: 3}\ncompression: ${c}\n`,
    });
    addBigInput(join(work, `proj-${c}`), manifest);
    const big = createHash('sha256')
      .update(readFileSync(join(work, `proj-${c}`, 'app', 'big.bin')))
      .digest('hex');
    EXPECTED = `hello from /app/run.sh\n${big}  /app/big.bin\n`;
    const out = join(work, `image-${c}.tar`);
    const b = mkimgJson<{ layers: unknown[] }>(['build', manifest, '-o', out]);
    expect(b.code).toBe(0);
    expect(b.json.layers).toHaveLength(3);
    images[c] = out;
  }
});

afterAll(() => {
  for (const d of ['podman', 'buildah']) {
    if (!have(d)) continue;
    spawnSync(d, ['--root', join(work, d, 'root'), '--runroot', join(work, d, 'run'), 'system', 'reset', '--force'], {
      stdio: 'ignore',
    });
  }
  rmSync(work, { recursive: true, force: true });
});

function run(cmd: string, args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 180_000 });
  return { code: r.status ?? 1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

describe.skipIf(!have('podman'))('podman', () => {
  for (const c of ['gzip', 'zstd'] as const) {
    it(`loads and runs a per-package image with ${c} layers`, () => {
      const store = ['--root', join(work, 'podman', 'root'), '--runroot', join(work, 'podman', 'run')];
      const base = [...store, '--storage-driver', 'vfs'];
      const load = run('podman', [...base, 'load', '-i', images[c]]);
      expect(load.code, load.stderr).toBe(0);
      expect(load.stdout).toContain(`Loaded image: ${REF}`);
      const r = run('podman', [...base, 'run', '--rm', '--network', 'none', ...ULIMITS, ...RUN_IMAGE(REF)]);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe(EXPECTED);
      run('podman', [...base, 'rmi', '--force', REF]);
    });
  }
});

describe.skipIf(!have('buildah'))('buildah', () => {
  for (const c of ['gzip', 'zstd'] as const) {
    it(`builds from a per-package oci-archive with ${c} layers and runs in it`, () => {
      const base = [
        '--root',
        join(work, 'buildah', 'root'),
        '--runroot',
        join(work, 'buildah', 'run'),
        '--storage-driver',
        'vfs',
      ];
      const from = run('buildah', [...base, 'from', '--pull-never', `oci-archive:${images[c]}`]);
      expect(from.code, from.stderr).toBe(0);
      const ctr = from.stdout.trim().split('\n').pop()!;
      const r = run('buildah', [...base, 'run', '--isolation', 'chroot', ctr, '--', ...RUN]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe(EXPECTED);
      run('buildah', [...base, 'rm', ctr]);
    });
  }
});

describe.skipIf(!have('dockerd'))('docker', () => {
  let daemon: ChildProcess | undefined;
  const sock = join(work, 'docker', 'docker.sock');
  const docker = (...args: string[]) => run('/usr/bin/docker', ['-H', `unix://${sock}`, ...args]);

  beforeAll(async () => {
    const d = join(work, 'docker');
    mkdirSync(d, { recursive: true });
    daemon = spawn(
      'dockerd',
      [
        '--iptables=false',
        '--bridge=none',
        '--data-root',
        join(d, 'data'),
        '--exec-root',
        join(d, 'exec'),
        '--pidfile',
        join(d, 'docker.pid'),
        '-H',
        `unix://${sock}`,
        '--storage-driver',
        'vfs',
      ],
      { stdio: 'ignore' },
    );
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && !(existsSync(sock) && docker('info').code === 0))
      await new Promise((r) => setTimeout(r, 200));
    expect(docker('info').code).toBe(0);
  }, 90_000);

  afterAll(async () => {
    if (!daemon) return;
    const done = new Promise((r) => daemon!.once('exit', r));
    daemon.kill('SIGTERM');
    await Promise.race([done, new Promise((r) => setTimeout(r, 20_000))]);
    if (daemon.exitCode === null) daemon.kill('SIGKILL');
  }, 30_000);

  it('loads and runs a per-package image with gzip layers', () => {
    const load = docker('load', '-i', images.gzip);
    expect(load.code, load.stderr).toBe(0);
    expect(load.stdout).toContain(`Loaded image: ${REF.replace('docker.io/', '')}`);
    const r = docker('run', '--rm', '--network', 'none', ...RUN_IMAGE(REF));
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(EXPECTED);
  });

  it('zstd layers: Docker 20.10 (Debian 12) cannot unpack them; newer Docker runs them', () => {
    const version = docker('version', '--format', '{{.Server.Version}}').stdout.trim();
    const load = docker('load', '-i', images.zstd);
    if (Number(version.split('.')[0]) < 23) {
      // Its layer store reads gzip or plain tars only: the zstd bytes reach the tar reader as they are.
      expect(load.code).not.toBe(0);
      expect(load.stderr).toMatch(/archive\/tar: invalid tar header/);
    } else {
      expect(load.code, load.stderr).toBe(0);
      expect(docker('run', '--rm', '--network', 'none', ...RUN_IMAGE(REF)).stdout).toBe(EXPECTED);
    }
  });
});

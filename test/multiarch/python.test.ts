/**
 * The python example for amd64 and arm64, from the host's Debian mirror: the
 * arm64 image is minimized and proven under qemu-user (binfmt_misc), holds
 * aarch64 ELF files, and runs under runc through binfmt. Skipped, saying so,
 * when the mirror does not answer or this host cannot emulate arm64.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT, mkimg, mkimgJson } from '../helpers/cli.js';
import { hostMirror } from '../helpers/debian-mirror.js';
import { runImage, unpackImage } from '../helpers/runc.js';
import { skopeo, startRegistry } from '../helpers/registry.js';

const mirror = await hostMirror();
const emulation = existsSync('/proc/sys/fs/binfmt_misc/qemu-aarch64');
const skip = !mirror || !emulation;
if (skip)
  console.warn(
    `multiarch python: SKIPPED: ${!mirror ? 'no answering host Debian mirror' : 'no qemu-aarch64 binfmt_misc handler (install qemu-user-static binfmt-support)'}`,
  );

const work = mkdtempSync(join(tmpdir(), 'mkimg-multiarch-py-'));
const cache = join(work, 'cache');
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The python example, unlocked, building amd64 and arm64. */
function twoPlatformManifest(): string {
  const dir = join(work, 'python');
  cpSync(resolve(PROJECT_ROOT, 'examples/python'), dir, { recursive: true });
  const path = join(dir, 'manifest.yaml');
  let text = readFileSync(path, 'utf8');
  text = text.slice(0, text.indexOf('# Pins written'));
  text = text
    .replace('tag: "1.0"\n', 'tag: "1.0"\narchitectures: [amd64, arm64]\n')
    .replaceAll('../../keys/', `${PROJECT_ROOT}/keys/`);
  writeFileSync(path, text);
  return path;
}

function elfMachine(file: string): number {
  return readFileSync(file).readUInt16LE(18);
}

describe.skipIf(skip)('the python example for amd64 and arm64', () => {
  it('locks both, builds one image index of both platforms, each platform alone the same image; arm64 is aarch64, proven under emulation, and runs under runc; the index goes through a registry and back whole', async () => {
    const manifest = twoPlatformManifest();
    const lock = mkimg(['lock', manifest, '--cache-dir', cache], { timeout: 600_000 });
    expect(lock.code, lock.stderr).toBe(0);
    expect(lock.stdout).toMatch(/packages for amd64, \d+ packages for arm64/);
    expect(mkimg(['lock', '--check', manifest]).code).toBe(0);

    // One build: an image index of both platforms.
    const both = join(work, 'python-both.tar');
    const built = mkimgJson<{
      manifestDigest: string;
      platforms: { architecture: string; manifestDigest: string; minimize: { after: { files: number } } }[];
    }>(['build', manifest, '-o', both, '--cache-dir', cache, '--json'], { timeout: 1_200_000 });
    expect(built.code, built.stderr).toBe(0);
    expect(built.json.platforms.map((p) => p.architecture)).toEqual(['amd64', 'arm64']);
    for (const p of built.json.platforms) expect(p.minimize.after.files).toBeGreaterThan(100);
    const raw = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', `oci-archive:${both}`], { encoding: 'utf8' }));
    expect(raw.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(raw.manifests.map((m: { platform: unknown }) => m.platform)).toEqual([
      { architecture: 'amd64', os: 'linux' },
      { architecture: 'arm64', os: 'linux', variant: 'v8' },
    ]);
    const arm = JSON.parse(
      execFileSync('skopeo', ['inspect', '--override-arch', 'arm64', `oci-archive:${both}`], { encoding: 'utf8' }),
    );
    expect(arm.Architecture).toBe('arm64');
    // Docker's manifest.json names the host's (amd64) image.
    const dockerManifest = JSON.parse(execFileSync('tar', ['-xOf', both, 'manifest.json'], { encoding: 'utf8' }));
    expect(dockerManifest).toHaveLength(1);
    expect(dockerManifest[0].RepoTags).toEqual(['docker.io/mkimg-examples/python:1.0']);

    // Through a real registry: mkimg push, skopeo copy --all to another repository, mkimg pull back whole.
    const reg = await startRegistry();
    try {
      const pushed = mkimgJson<{ manifestDigest: string }>(['push', both, `${reg.host}/python:1.0`, '--json']);
      expect(pushed.code, pushed.stderr).toBe(0);
      expect(pushed.json.manifestDigest).toBe(built.json.manifestDigest);
      const copy = skopeo([
        'copy',
        '--all',
        '--src-tls-verify=false',
        '--dest-tls-verify=false',
        `docker://${reg.host}/python:1.0`,
        `docker://${reg.host}/copied:1.0`,
      ]);
      expect(copy.code, copy.stderr).toBe(0);
      const back = join(work, 'python-pulled.tar');
      const pulled = mkimg(['pull', `${reg.host}/copied:1.0`, '-o', back, '--name', 'mkimg-examples/python:1.0']);
      expect(pulled.code, pulled.stderr).toBe(0);
      expect(readFileSync(back).equals(readFileSync(both))).toBe(true);
    } finally {
      await reg.stop();
    }

    // Each platform alone (--platform) is the very image the index names.
    const images: Record<string, string> = {};
    for (const arch of ['amd64', 'arm64']) {
      const out = join(work, `python-${arch}.tar`);
      const r = mkimgJson<{ manifestDigest: string }>(
        ['build', manifest, '--platform', `linux/${arch}`, '-o', out, '--cache-dir', cache, '--json'],
        { timeout: 900_000 },
      );
      expect(r.code, r.stderr).toBe(0);
      expect(r.json.manifestDigest).toBe(built.json.platforms.find((p) => p.architecture === arch)!.manifestDigest);
      images[arch] = out;
    }
    const { bundle, cleanup } = unpackImage(images.arm64!, '1.0');
    try {
      expect(elfMachine(join(bundle, 'rootfs/usr/bin/python3.11'))).toBe(183); // EM_AARCH64
      const config = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
      expect(config.process.user.uid).toBe(65532);
    } finally {
      cleanup();
    }
    for (const arch of ['amd64', 'arm64']) {
      const r = runImage(images[arch]!, '1.0', {
        args: ['/usr/bin/python3.11', '/app/main.py', '2024-01-01T12:00:00', 'Europe/Paris'],
        timeoutMs: 120_000,
      });
      expect(r).toMatchObject({ code: 0, stdout: '2024-01-01T13:00:00+01:00 in Europe/Paris, as user nonroot\n' });
    }
  }, 1_800_000);

  it('stops with exit 14 naming qemu-user-static when the host cannot run the foreign checks', () => {
    // A binfmt_misc folder without the handler stands in for a host without emulation.
    const manifest = join(work, 'python', 'manifest.yaml');
    const r = mkimg(
      ['build', manifest, '--platform', 'linux/arm64', '-o', join(work, 'no.tar'), '--cache-dir', cache],
      {
        env: { ...process.env, MKIMG_BINFMT_DIR: join(work, 'no-binfmt') },
        timeout: 600_000,
      },
    );
    expect(r.code).toBe(14);
    expect(r.stderr).toContain('no binfmt_misc handler for aarch64');
    expect(r.stderr).toContain('qemu-user-static');
    expect(existsSync(join(work, 'no.tar'))).toBe(false);
  });
});

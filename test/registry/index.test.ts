/**
 * Images of several platforms through a real registry (docker-registry):
 * push puts every platform and the index, pull without --platform keeps the
 * whole index byte-for-byte, pull --platform takes one, and `skopeo copy
 * --all` there and back keeps the digests. An index whose platforms disagree
 * with their configs is refused on both sides.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { indexTarMembers, platformIndex, writePlatformImages } from '../../src/image/platforms.js';
import { writeLayoutTar, type LayoutMember } from '../../src/image/write-image.js';
import { openImageLayout, openImageTar } from '../../src/oci/image-tar.js';
import { pullImage } from '../../src/registry/pull.js';
import { pushImage } from '../../src/registry/push.js';
import { mkimg, mkimgJson } from '../helpers/cli.js';
import { rejection } from '../helpers/errors.js';
import { makeCompressedTestImage } from '../helpers/oci-image.js';
import { skopeo, startRegistry, type TestRegistry, putRaw } from '../helpers/registry.js';

let reg: TestRegistry;
let dir: string;
let both: string;
let indexDigest: string;
const platformDigests: Record<string, string> = {};

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

beforeAll(async () => {
  reg = await startRegistry();
  dir = mkdtempSync(join(tmpdir(), 'mkimg-index-test-'));
  // gzip layers, as mkimg build writes by default (skopeo compresses uncompressed layers it copies).
  const parts = [];
  for (const architecture of ['amd64', 'arm64']) {
    const tar = join(dir, `${architecture}.tar`);
    const w = await makeCompressedTestImage(tar, {
      name: 'multi/app',
      tag: '2',
      architecture,
      files: { '/etc/arch': `${architecture}\n`, '/bin/true.sh': '#!/bin/sh\nexit 0\n' },
    });
    platformDigests[architecture] = w.manifestDigest;
    parts.push({ architecture, tar });
  }
  both = join(dir, 'both.tar');
  indexDigest = (await writePlatformImages(parts, both, 1700000000, 'amd64')).indexDigest;
});
afterAll(async () => {
  await reg?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const put = (path: string, mediaType: string, body: Buffer) => putRaw(reg.url, path, mediaType, body);

describe('an image of several platforms in a registry', () => {
  it('push puts both platforms and the index; skopeo sees the index; pull keeps it whole, byte-identical', async () => {
    const pushed = mkimgJson<{
      manifestDigest: string;
      configDigest?: string;
      platforms: { platform: string; manifestDigest: string }[];
    }>(['push', both, `${reg.host}/multi/app:2`, '--json']);
    expect(pushed.code, pushed.stderr).toBe(0);
    expect(pushed.json.manifestDigest).toBe(indexDigest);
    expect(pushed.json.configDigest).toBeUndefined();
    expect(pushed.json.platforms).toEqual([
      { platform: 'linux/amd64', manifestDigest: platformDigests.amd64, configDigest: expect.any(String) },
      { platform: 'linux/arm64/v8', manifestDigest: platformDigests.arm64, configDigest: expect.any(String) },
    ]);

    const raw = skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/multi/app:2`]);
    expect(raw.code, raw.stderr).toBe(0);
    expect(`sha256:${createHash('sha256').update(raw.stdout).digest('hex')}`).toBe(indexDigest);
    const doc = JSON.parse(raw.stdout);
    expect(doc.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(doc.manifests.map((m: { digest: string }) => m.digest)).toEqual([
      platformDigests.amd64,
      platformDigests.arm64,
    ]);
    const arm = skopeo([
      'inspect',
      '--tls-verify=false',
      '--override-arch',
      'arm64',
      `docker://${reg.host}/multi/app:2`,
    ]);
    expect(JSON.parse(arm.stdout).Architecture).toBe('arm64');

    const pulled = join(dir, 'pulled.tar');
    const r = await pullImage(`${reg.host}/multi/app:2`, pulled, { name: 'multi/app:2' });
    expect(r!.manifestDigest).toBe(indexDigest);
    expect(r!.platforms?.map((p) => p.platform)).toEqual(['linux/amd64', 'linux/arm64/v8']);
    expect(sha256(pulled)).toBe(sha256(both));

    // A second push finds every blob present.
    const again = await pushImage(pulled, `${reg.host}/multi/app:2`);
    expect(again.blobsUploaded).toBe(0);
    expect(again.manifestDigest).toBe(indexDigest);
  });

  it('pull --platform takes one platform: the very image built for it', async () => {
    const out = join(dir, 'arm64-pulled.tar');
    const r = mkimgJson<{ manifestDigest: string; configDigest: string }>([
      'pull',
      `${reg.host}/multi/app:2`,
      '-o',
      out,
      '--platform',
      'linux/arm64',
      '--name',
      'multi/app:2',
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.manifestDigest).toBe(platformDigests.arm64);
    expect((await openImageTar(out)).manifestDescriptor.digest).toBe(platformDigests.arm64);
    const none = mkimg(['pull', `${reg.host}/multi/app:2`, '-o', join(dir, 'x.tar'), '--platform', 'linux/s390x']);
    expect(none.code).toBe(12);
    expect(none.stderr).toMatch(/no image for linux\/s390x \(it has: linux\/amd64, linux\/arm64\/v8\)/);
  });

  it('skopeo copy --all to another repository and back keeps every digest', async () => {
    const there = skopeo([
      'copy',
      '--all',
      '--src-tls-verify=false',
      '--dest-tls-verify=false',
      `docker://${reg.host}/multi/app:2`,
      `docker://${reg.host}/copied/app:2`,
    ]);
    expect(there.code, there.stderr).toBe(0);
    const back = join(dir, 'copied.tar');
    const r = await pullImage(`${reg.host}/copied/app:2`, back, { name: 'multi/app:2' });
    expect(r!.manifestDigest).toBe(indexDigest);
    expect(sha256(back)).toBe(sha256(both));
    const archive = skopeo([
      'copy',
      '--all',
      '--dest-tls-verify=false',
      `oci-archive:${both}`,
      `docker://${reg.host}/from-archive/app:2`,
    ]);
    expect(archive.code, archive.stderr).toBe(0);
    const raw = skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/from-archive/app:2`]);
    expect(`sha256:${createHash('sha256').update(raw.stdout).digest('hex')}`).toBe(indexDigest);
  });

  it('refuses an index whose platform disagrees with its config: in a tar (exit 7) and from a registry (exit 12)', async () => {
    const amd = await openImageTar(join(dir, 'amd64.tar'));
    const arm = await openImageTar(join(dir, 'arm64.tar'));
    // The arm64 image listed as amd64 and the other way round.
    const lying = platformIndex([
      { architecture: 'arm64', image: amd },
      { architecture: 'amd64', image: arm },
    ]);
    const source = (img: typeof amd) => (d: { digest: string }) => {
      const name = `blobs/sha256/${d.digest.slice(7)}`;
      const m = img.members.get(name)!;
      return { name, type: 'file', hostPath: img.path, offset: m.offset, size: m.size } as LayoutMember;
    };
    const members = indexTarMembers(
      lying,
      [amd, arm].map((img, i) => ({
        architecture: i ? 'amd64' : 'arm64',
        manifest: img.manifestDescriptor,
        config: img.manifest.config,
        layers: img.manifest.layers,
        source: source(img),
      })),
      { name: 'multi/app', tag: 'bad' },
      'amd64',
    );
    const bad = join(dir, 'lying.tar');
    writeLayoutTar(members, 1700000000, bad);
    const e = await rejection(openImageLayout(bad));
    expect(e.kind).toBe('integrity');
    expect(e.message).toMatch(/the entry for linux\/arm64\/v8 names an image whose config says linux\/amd64/);
    const cli = mkimg(['push', bad, `${reg.host}/multi/app:bad`]);
    expect(cli.code).toBe(7);

    // The same lie put straight into the registry (the platforms are already there).
    expect(await put('/v2/multi/app/manifests/bad', lying.descriptor.mediaType, lying.bytes)).toBe(201);
    const pulled = mkimg(['pull', `${reg.host}/multi/app:bad`, '-o', join(dir, 'bad-pulled.tar')]);
    expect(pulled.code).toBe(12);
    expect(pulled.stderr).toMatch(/lists sha256:[0-9a-f]{64} as linux\/arm64\/v8, but its config says linux\/amd64/);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { pushImage } from '../../src/registry/push.js';
import { pullImage } from '../../src/registry/pull.js';
import { openImageTar, readMember } from '../../src/oci/image-tar.js';
import { makeTestImage } from '../helpers/oci-image.js';
import { registerPush } from '../../src/cli/commands/push.js';
import {
  runCommand,
  skopeo,
  startProxy,
  startRegistry,
  uploadRequests,
  type TestRegistry,
} from '../helpers/registry.js';

const sha = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex');

let reg: TestRegistry;
let dir: string;

beforeAll(async () => {
  reg = await startRegistry();
  dir = mkdtempSync(join(tmpdir(), 'mkimg-push-test-'));
});
afterAll(async () => {
  await reg?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('push to docker-registry', () => {
  it('pushes an image that skopeo reads back with the same digests', async () => {
    const tar = join(dir, 'img.tar');
    const built = makeTestImage(tar, { name: 'app', tag: '1.0' });
    const r = await pushImage(tar, `${reg.host}/app:1.0`);
    expect(r.manifestDigest).toBe(built.manifestDigest);
    expect(r.configDigest).toBe(built.imageId);
    expect(r.blobsUploaded).toBe(2);
    expect(r.blobsSkipped).toBe(0);
    expect(r.reference).toBe(`${reg.host}/app:1.0`);

    const insp = skopeo(['inspect', '--tls-verify=false', `docker://${reg.host}/app:1.0`]);
    expect(insp.code, insp.stderr).toBe(0);
    expect(JSON.parse(insp.stdout).Digest).toBe(built.manifestDigest);
    const raw = skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/app:1.0`]);
    expect(sha(Buffer.from(raw.stdout, 'utf8'))).toBe(built.manifestDigest);
    expect(JSON.parse(raw.stdout).config.digest).toBe(built.imageId);

    const archive = join(dir, 'copy.tar');
    const cp = skopeo([
      'copy',
      '--preserve-digests',
      '--dest-oci-accept-uncompressed-layers',
      '--src-tls-verify=false',
      `docker://${reg.host}/app:1.0`,
      `oci-archive:${archive}`,
    ]);
    expect(cp.code, cp.stderr).toBe(0);
    const copied = await openImageTar(archive);
    expect(copied.manifestDescriptor.digest).toBe(built.manifestDigest);
    expect(copied.manifest.config.digest).toBe(built.imageId);
    const layer = copied.manifest.layers[0]!;
    const orig = await openImageTar(tar);
    expect(layer.digest).toBe(orig.manifest.layers[0]!.digest);
    expect(sha(await readMember(archive, copied.members.get(`blobs/sha256/${layer.digest.slice(7)}`)!))).toBe(
      layer.digest,
    );
  });

  it('takes the tag from the image when the reference has none, and a second push uploads no blob', async () => {
    const tar = join(dir, 'img2.tar');
    const built = makeTestImage(tar, { name: 'second', tag: 'v7', labels: { n: '2' } });
    const proxy = await startProxy(reg.host);
    try {
      const first = await pushImage(tar, `${proxy.host}/second`);
      expect(first.reference).toBe(`${proxy.host}/second:v7`);
      expect(first.blobsUploaded).toBe(2);
      expect(uploadRequests(proxy.log).length).toBeGreaterThan(0);
      proxy.log.length = 0;
      const again = await pushImage(tar, `${proxy.host}/second:v7`);
      expect(again.manifestDigest).toBe(built.manifestDigest);
      expect(again.blobsUploaded).toBe(0);
      expect(again.blobsSkipped).toBe(2);
      expect(again.bytesUploaded).toBe(0);
      expect(uploadRequests(proxy.log)).toEqual([]);
      expect(proxy.log.filter((l) => l.method === 'HEAD').length).toBe(2);
      expect(proxy.log.filter((l) => l.method === 'PUT' && l.path.includes('/manifests/')).length).toBe(1);
    } finally {
      await proxy.stop();
    }
  });

  it("prints the digests; pushes by tag@digest and refuses a digest that is not the image's", async () => {
    const tar = join(dir, 'img4.tar');
    const built = makeTestImage(tar, { name: 'human', tag: '1', labels: { n: '4' } });
    const r = await runCommand(registerPush, ['push', tar, `${reg.host}/human:5@${built.manifestDigest}`]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(`pushed ${reg.host}/human:5@${built.manifestDigest}`);
    expect(r.stdout).toContain(`manifest digest: ${built.manifestDigest}`);
    expect(r.stdout).toContain(`config digest:   ${built.imageId}`);
    const insp = skopeo(['inspect', '--tls-verify=false', `docker://${reg.host}/human:5`]);
    expect(JSON.parse(insp.stdout).Digest).toBe(built.manifestDigest);
    const wrong = await runCommand(registerPush, ['push', tar, `${reg.host}/human@sha256:${'0'.repeat(64)}`]);
    expect(wrong.exitCode).toBe(2);
    expect(wrong.stderr).toContain(`its manifest digest is ${built.manifestDigest}`);
  });

  it('a corrupt blob in the tar is an integrity error (exit 7), monolithic or chunked', async () => {
    const tar = join(dir, 'corrupt.tar');
    makeTestImage(tar, { name: 'corrupt', tag: '1', files: { '/data/x': 300_000 } });
    const img = await openImageTar(tar);
    const layer = img.manifest.layers[0]!;
    const m = img.members.get(`blobs/sha256/${layer.digest.slice(7)}`)!;
    const fd = openSync(tar, 'r+');
    writeSync(fd, Buffer.from([0x55 ^ readFileSync(tar)[m.offset + 1000]!]), 0, 1, m.offset + 1000);
    closeSync(fd);
    const r = await runCommand(registerPush, ['push', tar, `${reg.host}/corrupt:1`]);
    expect(r.exitCode, r.stderr).toBe(7);
    expect(r.stderr).toContain(`blob ${layer.digest} has digest sha256:`);
    await expect(
      pushImage(tar, `${reg.host}/corrupt:2`, { chunkThreshold: 100_000, chunkSize: 64_000 }),
    ).rejects.toMatchObject({ kind: 'integrity' });
  });

  it('pulls back a byte-identical tar', async () => {
    const tar = join(dir, 'img3.tar');
    makeTestImage(tar, { name: 'roundtrip/app', tag: '2.1', labels: { n: '3' } });
    await pushImage(tar, `${reg.host}/roundtrip/app:2.1`);
    const out = join(dir, 'pulled.tar');
    const r = await pullImage(`${reg.host}/roundtrip/app:2.1`, out);
    expect(r!.name).toBe('roundtrip/app:2.1');
    expect(readFileSync(out).equals(readFileSync(tar))).toBe(true);
    // With another name the tar differs only in index.json/manifest.json; blobs stay.
    const out2 = join(dir, 'pulled2.tar');
    const r2 = await pullImage(`${reg.host}/roundtrip/app@${r!.manifestDigest}`, out2, { name: 'other:9' });
    expect(r2!.manifestDigest).toBe(r!.manifestDigest);
    const img = await openImageTar(out2);
    expect(img.imageName).toBe('docker.io/library/other:9');
    expect(img.tag).toBe('9');
  });
});

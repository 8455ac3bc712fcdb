import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { pushImage } from '../../src/registry/push.js';
import { pullImage } from '../../src/registry/pull.js';
import { openImageTar, readMember } from '../../src/oci/image-tar.js';
import { registerPull } from '../../src/cli/commands/pull.js';
import { makeTestImage } from '../helpers/oci-image.js';
import { runCommand, skopeo, startProxy, startRegistry, type TestRegistry, putRaw } from '../helpers/registry.js';

let reg: TestRegistry;
let dir: string;
let tar: string;
let built: ReturnType<typeof makeTestImage>;

beforeAll(async () => {
  reg = await startRegistry();
  dir = mkdtempSync(join(tmpdir(), 'mkimg-pull-test-'));
  tar = join(dir, 'img.tar');
  built = makeTestImage(tar, { name: 'pl', tag: '1' });
  await pushImage(tar, `${reg.host}/pl:1`);
});
afterAll(async () => {
  await reg?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const put = (path: string, mediaType: string, body: Buffer) => putRaw(reg.url, path, mediaType, body);

describe('pull', () => {
  it('pulls a Docker v2 schema 2 image pushed by skopeo, blobs verified', async () => {
    const cp = skopeo([
      'copy',
      '--format',
      'v2s2',
      '--dest-tls-verify=false',
      `oci-archive:${tar}`,
      `docker://${reg.host}/dock:1`,
    ]);
    expect(cp.code, cp.stderr).toBe(0);
    const digest = JSON.parse(skopeo(['inspect', '--tls-verify=false', `docker://${reg.host}/dock:1`]).stdout)
      .Digest as string;
    const out = join(dir, 'dock.tar');
    const r = await pullImage(`${reg.host}/dock:1`, out);
    expect(r!.manifestDigest).toBe(digest);
    const img = await openImageTar(out);
    expect(img.manifestDescriptor.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    expect(img.manifest.config.digest).toBe(built.imageId);
    const ld = img.manifest.layers[0]!.digest;
    expect(
      'sha256:' +
        createHash('sha256')
          .update(await readMember(out, img.members.get(`blobs/sha256/${ld.slice(7)}`)!))
          .digest('hex'),
    ).toBe(ld);
    expect(JSON.parse((await readMember(out, img.members.get('manifest.json')!)).toString())[0].RepoTags).toEqual([
      'docker.io/library/dock:1',
    ]);
  });

  it('--platform picks one image from an index, and names the platforms it lacks', async () => {
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          {
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            digest: built.manifestDigest,
            size: (await openImageTar(tar)).manifestBytes.length,
            platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
          },
          {
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            digest: built.manifestDigest,
            size: (await openImageTar(tar)).manifestBytes.length,
            platform: { os: 'linux', architecture: 'amd64' },
          },
        ],
      }),
    );
    expect(await put('/v2/pl/manifests/multi', 'application/vnd.oci.image.index.v1+json', index)).toBe(201);
    const out = join(dir, 'multi.tar');
    const r = await pullImage(`${reg.host}/pl:multi`, out, {
      name: 'pl:1',
      platform: { os: 'linux', architecture: 'amd64' },
    });
    expect(r!.manifestDigest).toBe(built.manifestDigest);
    expect(readFileSync(out).equals(readFileSync(tar))).toBe(true);
    const bad = await runCommand(registerPull, [
      'pull',
      `${reg.host}/pl:multi`,
      '-o',
      join(dir, 'no.tar'),
      '--platform',
      'linux/s390x',
    ]);
    expect(bad.exitCode).toBe(12);
    expect(bad.stderr).toContain('no image for linux/s390x (it has: linux/arm64/v8, linux/amd64)');
    expect(existsSync(join(dir, 'no.tar'))).toBe(false);
  });

  it('refuses a blob whose bytes do not match its digest and leaves no output', async () => {
    const proxy = await startProxy(reg.host);
    const layer = (await openImageTar(tar)).manifest.layers[0]!;
    proxy.intercept = (req, res) => {
      if (req.method === 'GET' && req.url!.endsWith(`/blobs/${layer.digest}`)) {
        res.writeHead(200, { 'content-length': String(layer.size) });
        res.end(Buffer.alloc(layer.size, 7));
        return true;
      }
      return false;
    };
    const sub = mkdtempSync(join(dir, 'corrupt-'));
    try {
      const r = await runCommand(registerPull, ['pull', `${proxy.host}/pl:1`, '-o', join(sub, 'bad.tar')]);
      expect(r.exitCode).toBe(12);
      expect(r.stderr).toContain(`blob ${layer.digest} arrived with ${layer.size} bytes and digest sha256:`);
      expect(readdirSync(sub)).toEqual([]);
    } finally {
      await proxy.stop();
    }
  });

  it('an output folder that does not exist is a usage error', async () => {
    const r = await runCommand(registerPull, ['pull', `${reg.host}/pl:1`, '-o', join(dir, 'nope', 'x.tar')]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('does not exist');
  });

  it('a missing tag is a clear error', async () => {
    const r = await runCommand(registerPull, ['pull', `${reg.host}/pl:nope`, '-o', join(dir, 'n.tar'), '--json']);
    expect(r.exitCode).toBe(12);
    const e = JSON.parse(r.stdout).error;
    expect(e.message).toContain('no manifest nope');
    expect(e.status).toBe(404);
  });
});

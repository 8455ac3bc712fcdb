import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pushImage } from '../../src/registry/push.js';
import { pullImage } from '../../src/registry/pull.js';
import { openImageTar } from '../../src/oci/image-tar.js';
import { makeTestImage } from '../helpers/oci-image.js';
import { startProxy, startRegistry, uploadRequests, type TestRegistry } from '../helpers/registry.js';

let reg: TestRegistry;
let relReg: TestRegistry;
let dir: string;
const fast = { retryBaseMs: 20, retryMaxMs: 200 };

beforeAll(async () => {
  [reg, relReg] = await Promise.all([startRegistry(), startRegistry({ relativeUrls: true })]);
  dir = mkdtempSync(join(tmpdir(), 'mkimg-faults-test-'));
});
afterAll(async () => {
  await Promise.all([reg?.stop(), relReg?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

async function pulledEqual(host: string, ref: string, tar: string): Promise<void> {
  const out = join(dir, `pulled-${Math.random().toString(36).slice(2)}.tar`);
  await pullImage(`${host}/${ref}`, out);
  expect(readFileSync(out).equals(readFileSync(tar))).toBe(true);
  rmSync(out);
}

describe('push through faults', () => {
  it('survives a 500 on the first upload request', async () => {
    const tar = join(dir, 'a.tar');
    makeTestImage(tar, { name: 'fault500', tag: '1', files: { '/data/blob': 300_000 } });
    const proxy = await startProxy(reg.host);
    let failed = 0;
    proxy.intercept = (req, res) => {
      if (failed === 0 && req.method === 'PUT' && req.url!.includes('/blobs/uploads/')) {
        failed++;
        req.resume();
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ errors: [{ code: 'UNKNOWN', message: 'injected failure' }] }));
        return true;
      }
      return false;
    };
    try {
      const r = await pushImage(tar, `${proxy.host}/fault500:1`, fast);
      expect(failed).toBe(1);
      expect(r.blobsUploaded).toBe(2);
      expect(proxy.log.some((l) => l.status === 500)).toBe(true);
      await pulledEqual(reg.host, 'fault500:1', tar);
    } finally {
      await proxy.stop();
    }
  });

  it('restarts a chunked upload whose connection drops half-way, and the result is complete', async () => {
    const tar = join(dir, 'b.tar');
    makeTestImage(tar, { name: 'drop', tag: '1', files: { '/data/big': 3 << 20 } });
    const proxy = await startProxy(relReg.host);
    let patches = 0;
    proxy.dropAfter = {
      match: (req) => req.method === 'PATCH' && ++patches === 2,
      bytes: 100_000,
    };
    try {
      const r = await pushImage(tar, `${proxy.host}/drop:1`, {
        ...fast,
        chunkThreshold: 1 << 20,
        chunkSize: 512 << 10,
      });
      expect(r.blobsUploaded).toBe(2);
      expect(proxy.log.some((l) => l.status === -1)).toBe(true);
      // Every PATCH but the dropped one carried a full chunk or the tail.
      const patchLog = proxy.log.filter((l) => l.method === 'PATCH' && l.status === 202);
      expect(patchLog.length).toBeGreaterThanOrEqual(6);
      for (const p of patchLog) expect(p.headers['content-range']).toMatch(/^\d+-\d+$/);
      expect(r.bytesUploaded).toBeGreaterThan(3 << 20);
      await pulledEqual(relReg.host, 'drop:1', tar);
    } finally {
      await proxy.stop();
    }
  });

  it('a push interrupted before the manifest, run again, resends no blob', async () => {
    const tar = join(dir, 'c.tar');
    const built = makeTestImage(tar, { name: 'resume', tag: '1', files: { '/data/x': 200_000 } });
    const proxy = await startProxy(reg.host);
    proxy.intercept = (req) => {
      if (req.method === 'PUT' && req.url!.includes('/manifests/')) {
        req.socket.destroy();
        return true;
      }
      return false;
    };
    try {
      await expect(pushImage(tar, `${proxy.host}/resume:1`, { ...fast, retries: 0 })).rejects.toMatchObject({
        kind: 'registry',
      });
      proxy.intercept = undefined;
      proxy.log.length = 0;
      const r = await pushImage(tar, `${proxy.host}/resume:1`, fast);
      expect(r.manifestDigest).toBe(built.manifestDigest);
      expect(r.blobsUploaded).toBe(0);
      expect(r.blobsSkipped).toBe(2);
      expect(uploadRequests(proxy.log)).toEqual([]);
      await pulledEqual(reg.host, 'resume:1', tar);
    } finally {
      await proxy.stop();
    }
  });

  it('honours OCI-Chunk-Min-Length and resolves relative Locations', async () => {
    const tar = join(dir, 'd.tar');
    makeTestImage(tar, { name: 'minchunk', tag: '1', files: { '/data/big': (5 << 20) + 12345 } });
    const proxy = await startProxy(relReg.host);
    proxy.rewriteHeaders = (req, headers) => {
      if (req.method === 'POST') headers['oci-chunk-min-length'] = String(2 << 20);
      expect(String(headers.location ?? '/')).toMatch(/^\//); // the registry answers relative Locations
    };
    try {
      const r = await pushImage(tar, `${proxy.host}/minchunk:1`, { chunkThreshold: 1 << 20, chunkSize: 256 << 10 });
      const layerSize = (await openImageTar(tar)).manifest.layers[0]!.size;
      const sizes = proxy.log.filter((l) => l.method === 'PATCH').map((l) => l.bytes);
      expect(sizes).toEqual([2 << 20, 2 << 20, layerSize - (4 << 20)]);
      expect(r.blobsUploaded).toBe(2);
      await pulledEqual(relReg.host, 'minchunk:1', tar);
    } finally {
      await proxy.stop();
    }
  });
});

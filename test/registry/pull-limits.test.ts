/**
 * A registry that never stops talking: an endless manifest, a trickling blob,
 * a blob that stalls. `mkimg pull` ends each within its limit (SPEC §4
 * "Limits") with one registry error (exit 12) and leaves nothing beside -o.
 * The registry is a real HTTP server in this process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mkimgAsync } from '../helpers/cli.js';

const sha = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex');
const config = Buffer.from(
  JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }),
);
const layer = Buffer.alloc(4096, 7);
const manifest = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha(layer), size: layer.length }],
  }),
);

let server: http.Server;
let host: string;
let work: string;
const timers = new Set<NodeJS.Timeout>();

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'mkimg-pull-limits-'));
  server = http.createServer((req, res) => {
    const url = req.url ?? '';
    if (url === '/v2/' || url === '/v2') return res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    if (url.startsWith('/v2/endless/manifests/')) {
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
      const chunk = Buffer.alloc(1 << 16, 0x20);
      const pump = (): void => {
        while (res.write(chunk));
        res.once('drain', pump);
      };
      res.on('close', () => res.removeAllListeners('drain'));
      return pump();
    }
    const m = /^\/v2\/(trickle|stall)\/(manifests|blobs)\/(.+)$/.exec(url);
    if (!m) return res.writeHead(404).end();
    if (m[2] === 'manifests')
      return res
        .writeHead(200, {
          'content-type': 'application/vnd.oci.image.manifest.v1+json',
          'docker-content-digest': sha(manifest),
        })
        .end(manifest);
    if (m[3] === sha(config)) return res.writeHead(200, { 'content-length': String(config.length) }).end(config);
    res.writeHead(200, { 'content-length': String(layer.length) });
    if (m[1] === 'stall') return res.write(layer.subarray(0, 10)); // then nothing, ever
    let i = 0;
    const t = setInterval(() => {
      if (res.destroyed || i >= layer.length) return clearInterval(t);
      res.write(layer.subarray(i, i + 1)); // one byte every 100 ms: never idle, never done
      i++;
    }, 100);
    timers.add(t);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  for (const t of timers) clearInterval(t);
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  rmSync(work, { recursive: true, force: true });
});

async function pull(
  repo: string,
  env: Record<string, string>,
): Promise<{ code: number; stderr: string; left: string[]; ms: number }> {
  const out = join(work, repo);
  mkdirSync(out);
  const t0 = Date.now();
  const r = await mkimgAsync(['pull', `${host}/${repo}:1`, '-o', join(out, 'image.tar')], {
    env: { ...process.env, ...env },
    timeout: 120_000,
  });
  return { code: r.code, stderr: r.stderr, left: readdirSync(out), ms: Date.now() - t0 };
}

describe('mkimg pull against a registry that does not stop', () => {
  it('an endless manifest is cut off at the body limit', async () => {
    const r = await pull('endless', {});
    expect(r.code).toBe(12);
    expect(r.stderr).toMatch(
      /^mkimg: error: registry 127\.0\.0\.1:\d+: GET \/v2\/endless\/manifests\/1 answered with more than 8 MiB/,
    );
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.left).toEqual([]);
  }, 120_000);

  it('a trickling blob ends at the overall deadline (MKIMG_PULL_TIMEOUT)', async () => {
    const r = await pull('trickle', { MKIMG_PULL_TIMEOUT: '3' });
    expect(r.code).toBe(12);
    expect(r.stderr).toMatch(/the pull did not finish within 3 s/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.left).toEqual([]);
    expect(r.ms).toBeLessThan(60_000);
  }, 120_000);

  it('a stalled blob is given up after its retries (MKIMG_PULL_STALL_TIMEOUT)', async () => {
    const r = await pull('stall', { MKIMG_PULL_STALL_TIMEOUT: '0.5' });
    expect(r.code).toBe(12);
    expect(r.stderr).toMatch(/blob sha256:[0-9a-f]{64} stalled: no data for 0\.5 s/);
    expect(r.left).toEqual([]);
  }, 120_000);
});

/**
 * HTTPS rules on a non-loopback address of this machine: plain HTTP needs
 * --insecure, a self-signed certificate needs --insecure, and with it both work.
 * And a 100 MB layer through the default chunked path.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pushImage } from '../../src/registry/push.js';
import { pullImage } from '../../src/registry/pull.js';
import { registerPush } from '../../src/cli/commands/push.js';
import { makeTestImage } from '../helpers/oci-image.js';
import { runCommand, startProxy, startRegistry, type TestRegistry } from '../helpers/registry.js';

const external = Object.values(networkInterfaces())
  .flat()
  .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;

let dir: string;
let tar: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mkimg-transport-'));
  tar = join(dir, 'img.tar');
  makeTestImage(tar, { name: 'tr', tag: '1' });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!external)(`non-loopback registry at ${external}`, () => {
  let plain: TestRegistry;
  let tls: TestRegistry;
  beforeAll(async () => {
    [plain, tls] = await Promise.all([startRegistry({ addr: external }), startRegistry({ addr: external, tls: true })]);
  });
  afterAll(async () => {
    await Promise.all([plain?.stop(), tls?.stop()]);
  });

  it('plain HTTP is refused without --insecure and used with it', async () => {
    const r = await runCommand(registerPush, ['push', tar, `${plain.host}/tr:1`]);
    expect(r.exitCode).toBe(12);
    expect(r.stderr).toContain('--insecure');
    const ok = await runCommand(registerPush, ['push', tar, `${plain.host}/tr:1`, '--insecure', '--json']);
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout).blobsUploaded).toBe(2);
  });

  it('a self-signed certificate is refused without --insecure; with it the push goes over HTTPS', async () => {
    const r = await runCommand(registerPush, ['push', tar, `${tls.host}/tr:1`]);
    expect(r.exitCode).toBe(12);
    expect(r.stderr).toMatch(/certificate/i);
    expect(r.stderr).toContain('--insecure');
    const p = await pushImage(tar, `${tls.host}/tr:1`, { insecure: true });
    expect(p.blobsUploaded).toBe(2);
    const out = join(dir, 'tls-pulled.tar');
    await pullImage(`${tls.host}/tr:1`, out, { insecure: true });
    expect(readFileSync(out).equals(readFileSync(tar))).toBe(true);
  });
});

describe('a 100 MB layer', () => {
  it('goes in 64 MiB chunks by default and comes back byte-identical', async () => {
    const reg = await startRegistry();
    const proxy = await startProxy(reg.host);
    const big = join(dir, 'big.tar');
    try {
      const built = makeTestImage(big, { name: 'big', tag: '1', files: { '/data/random.bin': 100_000_000 } });
      const r = await pushImage(big, `${proxy.host}/big:1`);
      expect(r.manifestDigest).toBe(built.manifestDigest);
      const patches = proxy.log.filter((l) => l.method === 'PATCH');
      const layerSize = built.layers[0]!.size;
      expect(patches.map((p) => p.bytes)).toEqual([64 << 20, layerSize - (64 << 20)]);
      expect(patches.map((p) => p.headers['content-range'])).toEqual([
        `0-${(64 << 20) - 1}`,
        `${64 << 20}-${layerSize - 1}`,
      ]);
      const out = join(dir, 'big-pulled.tar');
      await pullImage(`${reg.host}/big:1`, out);
      expect(readFileSync(out).equals(readFileSync(big))).toBe(true);
    } finally {
      await proxy.stop();
      await reg.stop();
      rmSync(big, { force: true });
    }
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pushImage } from '../../src/registry/push.js';
import { pullImage } from '../../src/registry/pull.js';
import { registerPush } from '../../src/cli/commands/push.js';
import { registerPull } from '../../src/cli/commands/pull.js';
import { makeTestImage } from '../helpers/oci-image.js';
import {
  runCommand,
  startProxy,
  startRegistry,
  startTokenFrontEnd,
  writeAuthFile,
  type TestRegistry,
} from '../helpers/registry.js';

let open: TestRegistry;
let basic: TestRegistry;
let dir: string;
let tar: string;
let built: ReturnType<typeof makeTestImage>;
const savedEnv = { ...process.env };

beforeAll(async () => {
  [open, basic] = await Promise.all([
    startRegistry(),
    startRegistry({ htpasswd: { user: 'alice', password: 's3cret' } }),
  ]);
  dir = mkdtempSync(join(tmpdir(), 'mkimg-auth-test-'));
  tar = join(dir, 'img.tar');
  built = makeTestImage(tar, { name: 'app', tag: '1.0' });
  // No ambient credentials: HOME-based and XDG files point into the temp dir.
  process.env.DOCKER_CONFIG = join(dir, 'docker');
  process.env.XDG_RUNTIME_DIR = join(dir, 'xdg');
  delete process.env.REGISTRY_AUTH_FILE;
});
afterAll(async () => {
  process.env = savedEnv;
  await Promise.all([open?.stop(), basic?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

describe('Basic auth (htpasswd docker-registry)', () => {
  it('pushes with credentials from the Podman auth file, and from the Docker config', async () => {
    mkdirSync(join(dir, 'xdg', 'containers'), { recursive: true });
    writeAuthFile(join(dir, 'xdg', 'containers'), basic.host, 'alice', 's3cret');
    const r = await pushImage(tar, `${basic.host}/team/app:1.0`);
    expect(r.manifestDigest).toBe(built.manifestDigest);
    rmSync(join(dir, 'xdg', 'containers', 'auth.json'));

    mkdirSync(join(dir, 'docker'), { recursive: true });
    writeFileSync(
      join(dir, 'docker', 'config.json'),
      JSON.stringify({
        auths: { [`https://${basic.host}`]: { auth: Buffer.from('alice:s3cret').toString('base64') } },
      }),
    );
    const out = join(dir, 'pulled.tar');
    await pullImage(`${basic.host}/team/app:1.0`, out, { name: 'app:1.0' });
    expect(readFileSync(out).equals(readFileSync(tar))).toBe(true);
    rmSync(join(dir, 'docker', 'config.json'));

    mkdirSync(join(dir, 'env'), { recursive: true });
    process.env.REGISTRY_AUTH_FILE = writeAuthFile(join(dir, 'env'), basic.host, 'alice', 's3cret');
    try {
      expect((await pushImage(tar, `${basic.host}/team/env:1`)).manifestDigest).toBe(built.manifestDigest);
    } finally {
      delete process.env.REGISTRY_AUTH_FILE;
    }
    await expect(pushImage(tar, `${basic.host}/team/env:2`)).rejects.toMatchObject({
      kind: 'registry',
      details: { status: 401 },
    });
  });

  it('a wrong password is a clear registry error, exit 12', async () => {
    const authFile = writeAuthFile(dir, basic.host, 'alice', 'wrong');
    const r = await runCommand(registerPush, ['push', tar, `${basic.host}/team/app:1.0`, '--auth-file', authFile]);
    expect(r.exitCode).toBe(12);
    expect(r.stderr).toContain(`registry ${basic.host}`);
    expect(r.stderr).toContain('401');
    expect(r.stderr).toContain('rejected the credentials of user "alice"');
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    const j = await runCommand(registerPush, [
      'push',
      tar,
      `${basic.host}/team/app:1.0`,
      '--auth-file',
      authFile,
      '--json',
    ]);
    expect(j.exitCode).toBe(12);
    expect(JSON.parse(j.stdout).error).toMatchObject({ kind: 'registry', exitCode: 12, status: 401 });
  });

  it('no credentials: says so and how to log in', async () => {
    const r = await runCommand(registerPull, ['pull', `${basic.host}/team/app:1.0`, '-o', join(dir, 'x.tar')]);
    expect(r.exitCode).toBe(12);
    expect(r.stderr).toContain('requires authentication and no credentials');
    expect(r.stderr).toContain('login');
  });
});

describe('Bearer tokens', () => {
  it('fetches a token with Basic credentials and pushes; a repo without push permission gives 403 DENIED', async () => {
    const fe = await startTokenFrontEnd(open.host, { user: 'bob', password: 'pw', denyPush: ['locked/app'] });
    try {
      const authFile = writeAuthFile(dir, fe.host, 'bob', 'pw');
      const r = await pushImage(tar, `${fe.host}/tok/app:1.0`, { authFile });
      expect(r.manifestDigest).toBe(built.manifestDigest);
      expect(fe.tokenRequests.length).toBeGreaterThan(0);
      expect(fe.tokenRequests.every((t) => t.ok && t.account === 'bob')).toBe(true);
      expect(fe.tokenRequests.some((t) => t.scopes.includes('repository:tok/app:pull,push'))).toBe(true);

      const denied = await runCommand(registerPush, [
        'push',
        tar,
        `${fe.host}/locked/app:1.0`,
        '--auth-file',
        authFile,
      ]);
      expect(denied.exitCode).toBe(12);
      expect(denied.stderr).toContain('403');
      expect(denied.stderr).toContain('DENIED');
      expect(denied.stderr).toContain('repository "locked/app"');
      expect(denied.stderr).toContain('may not');

      const bad = writeAuthFile(join(dir), fe.host, 'bob', 'nope');
      const wrong = await runCommand(registerPush, ['push', tar, `${fe.host}/tok/app:1.0`, '--auth-file', bad]);
      expect(wrong.exitCode).toBe(12);
      expect(wrong.stderr).toContain('token service rejected the credentials of user "bob"');
    } finally {
      await fe.stop();
    }
  });
});

describe('rejected manifest', () => {
  it('a manifest referencing a blob the registry lacks: MANIFEST_BLOB_UNKNOWN, exit 12', async () => {
    const t2 = join(dir, 'img2.tar');
    makeTestImage(t2, { name: 'liar', tag: '1', labels: { x: 'y' } });
    const proxy = await startProxy(open.host);
    // Claim every blob is present: mkimg skips them and the registry refuses the manifest.
    proxy.intercept = (req, res) => {
      if (req.method === 'HEAD' && req.url!.includes('/blobs/')) {
        res.writeHead(200, { 'content-length': '0' });
        res.end();
        return true;
      }
      return false;
    };
    try {
      const r = await runCommand(registerPush, ['push', t2, `${proxy.host}/liar:1`]);
      expect(r.exitCode).toBe(12);
      expect(r.stderr).toContain('MANIFEST_BLOB_UNKNOWN');
      expect(r.stderr).toContain('upload of manifest');
      expect(r.stderr).toContain('HTTP 400');
    } finally {
      await proxy.stop();
    }
  });

  it('a reference without a registry host is a usage error (exit 2)', async () => {
    const r = await runCommand(registerPush, ['push', tar, 'app:1.0']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('no registry host');
  });
});

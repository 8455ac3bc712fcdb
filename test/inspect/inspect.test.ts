import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeSync, copyFileSync, openSync, readFileSync, statSync, truncateSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { writeAccounts } from '../../src/system/accounts.js';
import { writeSystemFiles } from '../../src/system/files.js';
import { writeStatusD } from '../../src/debian/statusd.js';
import { writeSbom } from '../../src/sbom/spdx.js';
import { writeImageTar } from '../../src/image/write-image.js';
import type { LayerEntry } from '../../src/image/layer.js';
import { inspectImage, formatInspect } from '../../src/inspect/inspect.js';
import { registerInspect } from '../../src/cli/commands/inspect.js';
import { MkimgError } from '../../src/util/errors.js';
import type { StagingRoot } from '../../src/stage/types.js';
import { aptDownload, run, stagedRoot, testManifest, type TestRoot, skipUnless } from '../helpers/system.js';

function layerEntries(root: StagingRoot, keep: Set<string>): LayerEntry[] {
  const out: LayerEntry[] = [];
  for (const p of keep) {
    const e = root.entries.get(p);
    if (!e || p === '/') continue;
    out.push(e.type === 'file' ? { ...e, hostPath: e.hostPath ?? join(root.dir, e.path) } : e);
  }
  return out;
}

describe('mkimg inspect', () => {
  let t: TestRoot | undefined;
  let skip = '';
  let image = '';
  let written: ReturnType<typeof writeImageTar>;
  const m = testManifest({
    name: 'inspect-test',
    tag: 'v1',
    accounts: {
      groups: [],
      users: [{ name: 'nonroot', uid: 65532, gid: 65532, home: '/home/nonroot', shell: '/usr/sbin/nologin' }],
    },
    config: {
      entrypoint: ['/bin/sh', '-c'],
      cmd: ['echo hi'],
      env: { LANG: 'C.UTF-8' },
      user: 'nonroot',
      workdir: '/home/nonroot',
      labels: { team: 'infra' },
      exposedPorts: ['8080'],
    },
  });

  beforeAll(async () => {
    const dl = aptDownload(['base-files', 'base-passwd', 'dash']);
    if (!dl.debs) {
      skip = dl.reason!;
      return;
    }
    t = await stagedRoot(dl.debs);
    const { root } = t;
    writeAccounts(root, m);
    writeSystemFiles(root, m);
    // "minimize": drop base-passwd's own files
    const dropped = new Set(
      root.packages.find((p) => p.name === 'base-passwd')!.paths.filter((p) => root.entries.get(p)?.type !== 'dir'),
    );
    const keep = new Set([...root.entries.keys()].filter((p) => !dropped.has(p)));
    for (const p of writeStatusD(root, keep)) keep.add(p);
    for (const p of writeSbom(root, keep, m).paths) keep.add(p);
    image = join(t.tmp, 'image.tar');
    written = writeImageTar(
      {
        name: m.name,
        tag: m.tag,
        architecture: m.architecture,
        sourceDateEpoch: m.sourceDateEpoch,
        config: m.config,
        manifestSha256: m.origin.sha256,
      },
      layerEntries(root, keep),
      image,
    );
  });
  afterAll(() => t?.cleanup());

  const need = skipUnless(
    () => t !== undefined,
    () => skip,
  );

  it('reports config, digests and layers as skopeo sees them', async (ctx) => {
    if (!need(ctx)) return;
    const r = await inspectImage(image);
    expect(r.imageId).toBe(written.imageId);
    expect(r.manifestDigest).toBe(written.manifestDigest);
    expect(r.name).toBe('docker.io/library/inspect-test:v1');
    expect(r.config).toMatchObject({
      entrypoint: ['/bin/sh', '-c'],
      cmd: ['echo hi'],
      user: 'nonroot',
      workdir: '/home/nonroot',
      exposedPorts: ['8080/tcp'],
    });
    expect(r.config.env).toContain('LANG=C.UTF-8');
    expect(r.config.labels).toEqual({ team: 'infra', 'org.mkimg.manifest.sha256': m.origin.sha256 });
    expect(r.files).toBeUndefined();

    const sk = JSON.parse(run('skopeo', ['inspect', `oci-archive:${image}`]));
    expect(sk.Digest).toBe(r.manifestDigest);
    expect(sk.Layers).toEqual(r.layers.map((l) => l.digest));
    expect(r.layers[0].size).toBe(written.layers[0].size);
  });

  it('lists every layer entry with its package, matching GNU tar', async (ctx) => {
    if (!need(ctx)) return;
    const r = await inspectImage(image, { files: true });
    const layerHex = r.layers[0].digest.slice(7);
    const listing = run('sh', ['-c', `tar -xOf '${image}' blobs/sha256/${layerHex} | tar -tf -`])
      .trim()
      .split('\n');
    expect(r.files!.map((f) => f.path)).toEqual(listing.map((n) => '/' + n.replace(/\/$/, '')));
    expect(r.fileCount).toBe(listing.length);
    const byPath = new Map(r.files!.map((f) => [f.path, f]));
    expect(byPath.get('/usr/bin/dash')).toMatchObject({
      type: 'file',
      mode: 0o755,
      uid: 0,
      gid: 0,
      package: 'dash',
      size: statSync(join(t!.root.dir, 'usr/bin/dash')).size,
    });
    expect(byPath.get('/etc/passwd')).toMatchObject({ package: '(generated)' });
    expect(byPath.get('/home/nonroot')).toMatchObject({ type: 'dir', mode: 0o700, uid: 65532, gid: 65532 });
    expect(byPath.get('/bin')).toMatchObject({ type: 'symlink', linkTarget: 'usr/bin' });
    // SBOM summary = status.d packages
    expect(r.sbom!.packages.map((p) => p.name)).toEqual(['base-files', 'dash']);
    expect(r.sbom!.packages[1].purl).toMatch(/^pkg:deb\/debian\/dash@/);
    const human = formatInspect(r);
    expect(human).toContain('  user:            nonroot');
    expect(human.some((l) => /^-rwxr-xr-x +0:0 +\d+  \/usr\/bin\/dash  \[dash\]$/.test(l))).toBe(true);
  });

  it('the CLI command prints human text and --json', async (ctx) => {
    if (!need(ctx)) return;
    const runCli = async (...args: string[]): Promise<string> => {
      const program = new Command('mkimg').exitOverride();
      registerInspect(program);
      const chunks: string[] = [];
      const orig = process.stdout.write.bind(process.stdout);
      (process.stdout as any).write = (s: string | Uint8Array) => (chunks.push(String(s)), true);
      try {
        await program.parseAsync(['node', 'mkimg', 'inspect', ...args]);
      } finally {
        (process.stdout as any).write = orig;
      }
      return chunks.join('');
    };
    const json = JSON.parse(await runCli(image, '--json'));
    expect(json.imageId).toBe(written.imageId);
    expect(json.sbom.packageCount).toBe(2);
    expect(process.exitCode ?? 0).toBe(0);
    const sbomOut = join(t!.tmp, 'out.spdx.json');
    await runCli(image, '--sbom', sbomOut);
    expect(readFileSync(sbomOut).equals(readFileSync(join(t!.root.dir, 'usr/share/mkimg/sbom.spdx.json')))).toBe(true);
    const human = await runCli(image);
    expect(human).toContain(`image id:        ${written.imageId}`);
    expect(human).toMatch(/sbom: +2 Debian packages/);
    process.exitCode = 0;
  });

  it('refuses a corrupt or truncated image with an integrity error', async (ctx) => {
    if (!need(ctx)) return;
    const bad = join(t!.tmp, 'bad.tar');
    copyFileSync(image, bad);
    // flip a byte inside the layer's content (far from any header)
    const size = statSync(bad).size;
    const fd = openSync(bad, 'r+');
    const buf = readFileSync(image);
    const at = buf.indexOf(Buffer.from('ELF')) + 100; // inside /usr/bin/dash
    writeSync(fd, Buffer.from([buf[at] ^ 0xff]), 0, 1, at);
    closeSync(fd);
    await expect(inspectImage(bad)).rejects.toMatchObject({
      kind: 'integrity',
      message: expect.stringMatching(/has content with digest/),
    });
    copyFileSync(image, bad);
    truncateSync(bad, Math.floor(size / 2));
    const err = await inspectImage(bad).catch((e) => e);
    expect(err).toBeInstanceOf(MkimgError);
    expect(err.kind).toBe('integrity');
    expect(err.exitCode).toBe(7);
  });
});

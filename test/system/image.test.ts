/**
 * End to end through the real build: accounts, status.d and the SBOM in a
 * minimized image built from real Debian .debs, run under runc as nonroot.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { buildImage } from '../../src/build/build.js';
import { loadManifest } from '../../src/manifest/load.js';
import { resolveLock } from '../../src/lock/resolve.js';
import { writeLockIntoManifest } from '../../src/lock/write.js';
import { inspectImage } from '../../src/inspect/inspect.js';
import { runImage, unpackImage } from '../helpers/runc.js';
import { aptDownload, run, skipUnless } from '../helpers/system.js';

const work = mkdtempSync(join(tmpdir(), 'mkimg-system-image-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('accounts and package database in a built, minimized image', () => {
  let image = '';
  let skip = '';
  let debNames: string[] = [];

  beforeAll(async () => {
    const dl = aptDownload(['libc6', 'libc-bin', 'libgcc-s1', 'tzdata']);
    if (!dl.debs) {
      skip = dl.reason!;
      return;
    }
    const proj = join(work, 'proj');
    run('mkdir', ['-p', join(proj, 'debs')]);
    const pkgLines = dl.debs.map((d) => {
      copyFileSync(d.path, join(proj, 'debs', basename(d.path)));
      return `  - deb: debs/${basename(d.path)}\n    sha256: "${d.sha256}"`;
    });
    debNames = dl.debs.map((d) => d.name);
    const manifestPath = join(proj, 'manifest.yaml');
    writeFileSync(
      manifestPath,
      `apiVersion: mkimg/v1
name: test/system-image
tag: "1"
sourceDateEpoch: 1700000000
packages:
${pkgLines.join('\n')}
accounts:
  groups:
    - { name: app, gid: 1000, members: [nonroot] }
  users:
    - { name: nonroot, uid: 65532, gid: 65532, home: /home/nonroot }
config:
  entrypoint: ["/usr/bin/getent"]
  cmd: ["passwd", "nonroot"]
  user: nonroot
minimize:
  keepGroups: [nss]
  checks:
    - args: ["/usr/bin/getent", "passwd", "nonroot"]
      user: nonroot
      expect: { exitCode: 0, stdout: "nonroot:x:65532:65532::/home/nonroot:/usr/sbin/nologin\\n" }
    - args: ["/usr/bin/getent", "group", "app"]
      expect: { exitCode: 0, stdout: "app:x:1000:nonroot\\n" }
`,
    );
    const lock = await resolveLock(loadManifest(manifestPath));
    writeFileSync(manifestPath, writeLockIntoManifest(readFileSync(manifestPath, 'utf8'), lock));
    image = join(work, 'image.tar');
    await buildImage({ manifestPath, output: image, cacheDir: join(work, 'cache'), quiet: true });
  });

  const need = skipUnless(
    () => image !== '',
    () => skip,
  );

  it('runs as uid 65532 and getent parses passwd and group inside the running image', (ctx) => {
    if (!need(ctx)) return;
    // the runtime takes uid and gid from config.user
    const { bundle, cleanup } = unpackImage(image, '1');
    try {
      const cfg = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
      expect(cfg.process.user).toMatchObject({ uid: 65532, gid: 65532 });
      // config.user is numeric now ("65532:65532"); umoci derives supplementary
      // groups only from a user *name*, so none are listed here (Docker and
      // containerd look the uid up in /etc/passwd and add them).
    } finally {
      cleanup();
    }
    const r = runImage(image, '1');
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('nonroot:x:65532:65532::/home/nonroot:/usr/sbin/nologin\n');
    expect(r.code).toBe(0);
    const g = runImage(image, '1', { args: ['/usr/bin/getent', 'group', 'nogroup'] });
    expect(g.stdout).toBe('nogroup:x:65534:\n');
  });

  it('status.d and the SBOM list the same packages: those still contributing files', async (ctx) => {
    if (!need(ctx)) return;
    const r = await inspectImage(image, { files: true });
    const statusd = r
      .files!.filter((f) => f.path.startsWith('/var/lib/dpkg/status.d/') && !f.path.endsWith('.md5sums'))
      .map((f) => f.path.split('/').pop()!);
    expect(statusd.sort()).toEqual(r.sbom!.packages.map((p) => p.name).sort());
    // libc6 and libc-bin hold getent and the libraries; tzdata was minimized away
    expect(statusd).toEqual(expect.arrayContaining(['libc-bin', 'libc6']));
    expect(statusd).not.toContain('tzdata');
    expect(debNames).toContain('tzdata');
    // every file a package owns in the SBOM is in the image; getent is libc-bin's
    expect(r.files!.find((f) => f.path === '/usr/bin/getent')?.package).toBe('libc-bin');
    expect(r.files!.find((f) => f.path === '/home/nonroot')).toMatchObject({
      type: 'dir',
      mode: 0o700,
      uid: 65532,
      gid: 65532,
    });
    expect(r.files!.find((f) => f.path === '/etc/shadow')).toMatchObject({ mode: 0o600, uid: 0, gid: 0 });
  });

  it('the config carries the user as uid:gid (the kubelet checks runAsNonRoot on numbers); the name stays in /etc/passwd', async (ctx) => {
    if (!need(ctx)) return;
    const r = await inspectImage(image, {});
    expect(r.config.user).toBe('65532:65532');
    // containerd/kind preload name: Docker's normalization of test/system-image
    expect(r.name).toBe('docker.io/test/system-image:1');
    const passwd = runImage(image, '1', { args: ['/usr/bin/getent', 'passwd', '65532'] });
    expect(passwd.stdout).toBe('nonroot:x:65532:65532::/home/nonroot:/usr/sbin/nologin\n');
  });
});

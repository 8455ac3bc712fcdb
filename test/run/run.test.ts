/**
 * mkimg run end to end, on a real image built by mkimg from the local sample
 * project (the host's static busybox in a .deb) and on hand-made OCI layouts
 * (several layers, gzip, hostile layers). Real namespaces, real tracer.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canRunAsNobody, MKIMG, mkimgAsNobody, PROJECT_ROOT, mkimg, mkimgAsync } from '../helpers/cli.js';
import { startRegistry } from '../helpers/registry.js';
import { layerTar, type FixtureFile } from '../helpers/oci-fixture.js';
import { writeSampleProject } from '../helpers/sample-project.js';

const work = mkdtempSync(join(tmpdir(), 'mkimg-run-test-'));
const cache = join(work, 'cache');
let image = '';

const run = (args: string[], opts: { input?: string } = {}) =>
  mkimg(['run', '--cache-dir', cache, ...args], { timeout: 60_000, ...opts });

beforeAll(() => {
  const proj = join(work, 'proj');
  mkdirSync(proj);
  const manifest = writeSampleProject(proj);
  image = join(work, 'sample.tar');
  const b = mkimg(['build', manifest, '-o', image, '--cache-dir', cache]);
  if (b.code !== 0) throw new Error(`build failed: ${b.stderr}`);
}, 300_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** An OCI layout directory with these layer tars (bottom first), gzip-compressed when asked. */
function writeLayout(
  dir: string,
  layers: Buffer[],
  opts: { gzip?: boolean; cmd?: string[]; architecture?: string } = {},
): void {
  mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  const put = (b: Buffer) => {
    const h = sha(b);
    writeFileSync(join(dir, 'blobs', 'sha256', h), b);
    return { digest: `sha256:${h}`, size: b.length };
  };
  const descs = layers.map((l) => ({
    mediaType: `application/vnd.oci.image.layer.v1.tar${opts.gzip ? '+gzip' : ''}`,
    ...put(opts.gzip ? gzipSync(l) : l),
  }));
  const config = Buffer.from(
    JSON.stringify({
      architecture: opts.architecture ?? 'amd64',
      os: 'linux',
      config: { Cmd: opts.cmd ?? ['/bin/busybox', 'true'], Env: ['PATH=/bin'] },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => `sha256:${sha(l)}`) },
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...put(config) },
      layers: descs,
    }),
  );
  const m = put(manifest);
  writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...m }],
    }),
  );
  writeFileSync(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
}

const busybox = readFileSync('/bin/busybox');
const bb = (): FixtureFile[] => [
  { name: 'bin/', type: 'directory' },
  { name: 'bin/busybox', content: busybox, mode: 0o755 },
];

function leftovers(): string[] {
  const d = join(cache, 'rootfs', 'sha256');
  return existsSync(d) ? readdirSync(d).filter((n) => n.startsWith('.tmp-')) : [];
}

describe('mkimg run', () => {
  it('runs the image config: entrypoint, env, exit codes and signals', () => {
    expect(run([image])).toMatchObject({ code: 0, stdout: 'hello from /app/run.sh\n' });
    expect(run(['--entrypoint=', image, 'sh', '-c', 'echo $LANG $HOME; exit 3'])).toMatchObject({
      code: 3,
      stdout: 'C.UTF-8 /root\n',
    });
    expect(
      run(['-e', 'LANG=x', '-e', 'FOO=bar', '--entrypoint', '/usr/bin/sh', image, '-c', 'echo $LANG $FOO']),
    ).toMatchObject({ code: 0, stdout: 'x bar\n' });
    expect(run(['--entrypoint=', image, 'sh', '-c', 'kill -TERM $$']).code).toBe(143);
    expect(run(['-u', '1234:55', '--entrypoint=', image, 'sh', '-c', 'busybox id -u; busybox id -g'])).toMatchObject({
      code: 0,
      stdout: '1234\n55\n',
    });
    expect(run(['-w', '/app', '--entrypoint=', image, 'sh', '-c', 'busybox pwd'])).toMatchObject({ stdout: '/app\n' });
    // stdin passes through
    expect(run(['--entrypoint=', image, 'busybox', 'cat'], { input: 'piped\n' })).toMatchObject({
      code: 0,
      stdout: 'piped\n',
    });
    // read-only root unless --writable, whose writes vanish
    expect(run(['--entrypoint=', image, 'sh', '-c', 'echo x > /app/new']).code).not.toBe(0);
    expect(
      run(['--writable', '--entrypoint=', image, 'sh', '-c', 'echo x > /app/new && busybox cat /app/new']),
    ).toMatchObject({ code: 0, stdout: 'x\n' });
    expect(run(['--entrypoint=', image, 'sh', '-c', 'busybox test -e /app/new || echo gone'])).toMatchObject({
      stdout: 'gone\n',
    });
  });

  it('unpacks once: a second run reuses the layer and the launch record', () => {
    run(['--entrypoint=', image, 'true']);
    const layers = readdirSync(join(cache, 'rootfs', 'sha256'));
    const ino = statSync(join(cache, 'rootfs', 'sha256', layers[0]!)).ino;
    expect(readdirSync(join(cache, 'run', 'images'))).toHaveLength(1);
    // another copy of the same image: a new record, the same unpacked layer
    const copy = join(work, 'copy.tar');
    writeFileSync(copy, readFileSync(image));
    expect(run([copy])).toMatchObject({ code: 0, stdout: 'hello from /app/run.sh\n' });
    expect(readdirSync(join(cache, 'rootfs', 'sha256'))).toEqual(layers);
    expect(statSync(join(cache, 'rootfs', 'sha256', layers[0]!)).ino).toBe(ino);
    expect(readdirSync(join(cache, 'run', 'images'))).toHaveLength(2);
  });

  it('tracer/mkimg-run: a warm run with no Node.js, the same result; anything else goes to mkimg run', async () => {
    const fast = join(PROJECT_ROOT, 'tracer', 'mkimg-run');
    const env = { ...process.env, MKIMG_NODE: process.execPath };
    const f = (args: string[], input?: string) => {
      const r = spawnSync(fast, ['--cache-dir', cache, ...args], { encoding: 'utf8', env, input, timeout: 60_000 });
      return { code: r.status, stdout: r.stdout, stderr: r.stderr };
    };
    const img = join(work, 'fast.tar');
    writeFileSync(img, readFileSync(image));
    // no record yet: mkimg run does the work (and writes the record)
    expect(f([img])).toMatchObject({ code: 0, stdout: 'hello from /app/run.sh\n' });
    expect(readdirSync(join(cache, 'run', 'fast')).length).toBeGreaterThan(0);
    // with the record: the tracer straight away (proof: Node.js is not reachable, and it still runs)
    const noNode = { ...env, MKIMG_NODE: '/nonexistent/node' };
    expect(
      spawnSync(fast, ['--cache-dir', cache, img, 'ignored-by-run.sh'], { encoding: 'utf8', env: noNode }),
    ).toMatchObject({ status: 0, stdout: 'hello from /app/run.sh\n' });
    const layout = join(work, 'fast-layout');
    writeLayout(layout, [await layerTar(bb(), 0)], { cmd: ['/bin/busybox', 'sh', '-c', 'echo $PATH; exit 5'] });
    expect(f([layout])).toMatchObject({ code: 5, stdout: '/bin\n' });
    expect(spawnSync(fast, ['--cache-dir', cache, layout], { encoding: 'utf8', env: noNode })).toMatchObject({
      status: 5,
      stdout: '/bin\n',
    });
    expect(
      spawnSync(fast, ['--cache-dir', cache, layout, '/bin/busybox', 'cat'], {
        encoding: 'utf8',
        env: noNode,
        input: 'in\n',
      }),
    ).toMatchObject({ status: 0, stdout: 'in\n' });
    // a flag the fast path does not know: the full implementation
    expect(f(['-e', 'X=de', layout, '/bin/busybox', 'sh', '-c', 'echo $X'])).toMatchObject({ code: 0, stdout: 'de\n' });
    // a changed image is not run from a stale record
    const r2 = spawnSync(fast, ['--cache-dir', cache, img], { encoding: 'utf8', env: noNode });
    expect(r2.status).toBe(0);
    writeFileSync(img, readFileSync(image));
    const stale = spawnSync(fast, ['--cache-dir', cache, img], { encoding: 'utf8', env: noNode });
    expect(stale.status).not.toBe(0);
    expect(stale.stderr).toMatch(/mkimg-run: cannot start \/nonexistent\/node/);
    // signals: SIGTERM reaches the program
    const child = spawn(
      fast,
      ['--cache-dir', cache, layout, '/bin/busybox', 'sh', '-c', 'echo up; exec /bin/busybox sleep 60'],
      { stdio: ['ignore', 'pipe', 'pipe'], env: noNode },
    );
    await new Promise<void>((res) => child.stdout.once('data', () => res()));
    child.kill('SIGTERM');
    expect(await new Promise<number | null>((res) => child.on('close', (c) => res(c)))).toBe(143);
  });

  // Retried: once in a few dozen CI runs under load the CLI has ended by the signal itself (close
  // code null) instead of 143; not reproduced alone or under CPU load (session notes, #17).
  it('forwards SIGTERM to the program: exit 128+15, nothing left running', { retry: 2 }, async () => {
    // What a failed try left running is not this try's.
    spawnSync('pkill', ['-f', 'busybox sleep 60']);
    const child = spawn(
      process.execPath,
      [MKIMG, 'run', '--cache-dir', cache, '--entrypoint=', image, 'sh', '-c', 'echo up; exec busybox sleep 60'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    await new Promise<void>((res) => child.stdout.once('data', () => res()));
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((res) => child.on('close', (c) => res(c)));
    expect(code).toBe(143);
    expect(
      execFileSync('sh', ['-c', 'ps -eo args | grep -c "[b]usybox sleep 60" || true'], { encoding: 'utf8' }).trim(),
    ).toBe('0');
  });

  it('bind mounts: read, :ro not written, rw written; a missing host path is a usage error', () => {
    const data = join(work, 'data');
    mkdirSync(data);
    writeFileSync(join(data, 'in.txt'), 'from the host\n');
    // as root, the sandbox's root is host id 2^31 (the tracer's id shift): a writable volume is one it owns
    if (process.getuid?.() === 0) chownSync(data, 2 ** 31, 2 ** 31);
    expect(
      run([
        '-v',
        `${data}:/data:ro`,
        '--entrypoint=',
        image,
        'sh',
        '-c',
        'busybox cat /data/in.txt; echo x > /data/out.txt',
      ]),
    ).toMatchObject({ code: 1, stdout: 'from the host\n' });
    expect(existsSync(join(data, 'out.txt'))).toBe(false);
    expect(
      run(['-v', `${data}:/app/static`, '--entrypoint=', image, 'sh', '-c', 'echo written > /app/static/out.txt']).code,
    ).toBe(0);
    expect(readFileSync(join(data, 'out.txt'), 'utf8')).toBe('written\n');
    const missing = run(['-v', `${join(work, 'nope')}:/data`, image, 'true']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^mkimg: error: -v .*nope does not exist on this host/m);
  });

  it('--network host reaches a host listener; the default network does not', async () => {
    const server = createServer((s) => s.end('hi from the host\n'));
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', () => res()));
    const port = (server.address() as { port: number }).port;
    const nc = (net: string) =>
      new Promise<{ code: number | null; stdout: string }>((res) => {
        const c = spawn(
          process.execPath,
          [
            MKIMG,
            'run',
            '--cache-dir',
            cache,
            '--network',
            net,
            '--entrypoint=',
            image,
            'busybox',
            'nc',
            '127.0.0.1',
            String(port),
          ],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        );
        let out = '';
        c.stdout.on('data', (d) => (out += d));
        c.on('close', (code) => res({ code, stdout: out }));
      });
    try {
      expect(await nc('host')).toMatchObject({ code: 0, stdout: 'hi from the host\n' });
      expect((await nc('none')).code).not.toBe(0);
    } finally {
      server.close();
    }
  });

  it('a terminal on stdin reaches the program as a terminal', () => {
    const r = spawnSync(
      'script',
      [
        '-qec',
        `${process.execPath} ${MKIMG} run --cache-dir ${cache} --entrypoint= ${image} sh -c 'busybox test -t 0 && echo tty'`,
        '/dev/null',
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    expect(r.stdout).toMatch(/tty/);
  });

  it('several gzip layers, applied in order with whiteouts, from an OCI layout directory', async () => {
    const l1 = await layerTar(
      [
        ...bb(),
        { name: 'etc/', type: 'directory' },
        { name: 'etc/a', content: 'one\n' },
        { name: 'etc/gone', content: 'x' },
        { name: 'opq/', type: 'directory' },
        { name: 'opq/old', content: 'x' },
      ],
      0,
    );
    const l2 = await layerTar(
      [
        { name: 'etc/', type: 'directory' },
        { name: 'etc/a', content: 'two\n' },
        { name: 'etc/.wh.gone', content: '' },
        { name: 'opq/', type: 'directory' },
        { name: 'opq/.wh..wh..opq', content: '' },
        { name: 'opq/new', content: 'n' },
        { name: 'etc/b', type: 'link', linkname: 'etc/a' },
      ],
      0,
    );
    const dir = join(work, 'layout');
    writeLayout(dir, [l1, l2], { gzip: true });
    const r = run([dir, '/bin/busybox', 'sh', '-c', 'busybox cat /etc/a /etc/b; busybox ls /etc; busybox ls /opq']);
    expect(r).toMatchObject({ code: 0, stdout: 'two\ntwo\na\nb\nnew\n' });
    expect(existsSync(join(cache, 'rootfs', 'chain'))).toBe(true);
  });

  it('--explain names a file minimization removed and the package that ships it', () => {
    const proj = join(work, 'minproj');
    mkdirSync(proj);
    const manifest = writeSampleProject(proj, { minimize: true });
    const img = join(work, 'min.tar');
    const xcache = join(work, 'xcache');
    expect(mkimg(['build', manifest, '-o', img, '--cache-dir', xcache]).code).toBe(0);
    // the .deb where a build from a repository leaves it: the cache, by its sha256
    const deb = readdirSync(join(proj, 'vendor')).find((n) => n.endsWith('.deb'))!;
    const bytes = readFileSync(join(proj, 'vendor', deb));
    mkdirSync(join(xcache, 'blobs', 'sha256'), { recursive: true });
    writeFileSync(join(xcache, 'blobs', 'sha256', sha(bytes)), bytes);
    const r = mkimg([
      'run',
      '--cache-dir',
      xcache,
      '--explain',
      '--entrypoint=',
      img,
      '/usr/bin/busybox',
      'cat',
      '/usr/share/doc/hello-busybox/README',
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^ {2}\/usr\/share\/doc\/hello-busybox\/README {2}\(package hello-busybox /m);
    expect(r.stderr).toMatch(/^ {4}keep: \["\/usr\/share\/doc\/hello-busybox\/README"\]$/m);
    // a path no package ships is not blamed on minimization
    const other = mkimg([
      'run',
      '--cache-dir',
      xcache,
      '--explain',
      '--entrypoint=',
      img,
      '/usr/bin/busybox',
      'cat',
      '/etc/nothere',
    ]);
    expect(other.stderr).toMatch(/none of them is shipped by a package/);
    // without the .deb in the cache, it says what it could not check
    rmSync(join(xcache, 'blobs', 'sha256', sha(bytes)));
    const unc = mkimg([
      'run',
      '--cache-dir',
      xcache,
      '--explain',
      '--entrypoint=',
      img,
      '/usr/bin/busybox',
      'cat',
      '/usr/share/doc/hello-busybox/README',
    ]);
    expect(unc.stderr).toMatch(/not checked .*: hello-busybox/);
  });

  it('a registry reference is pulled, run, and the pulled tar removed', async () => {
    const reg = await startRegistry();
    try {
      const pushed = await mkimgAsync(['push', image, `${reg.host}/sample:1`]);
      expect(pushed.code).toBe(0);
      const r = await mkimgAsync(['run', '--cache-dir', cache, `${reg.host}/sample:1`]);
      expect(r).toMatchObject({ code: 0, stdout: 'hello from /app/run.sh\n' });
      expect(readdirSync(join(cache, 'run')).filter((n) => n.startsWith('.pull-'))).toEqual([]);
      // run again with the layer gone from the registry (the largest blob): only the manifest is asked for
      const blobs = join(reg.storage, 'docker', 'registry', 'v2', 'blobs', 'sha256');
      const datas = readdirSync(blobs).flatMap((p) =>
        readdirSync(join(blobs, p)).map((h) => join(blobs, p, h, 'data')),
      );
      const layer = datas.sort((a, b) => statSync(b).size - statSync(a).size)[0]!;
      expect(statSync(layer).size).toBeGreaterThan(500_000);
      rmSync(layer);
      const again = await mkimgAsync(['run', '--cache-dir', cache, `${reg.host}/sample:1`]);
      expect(again).toMatchObject({ code: 0, stdout: 'hello from /app/run.sh\n' });
      const missing = await mkimgAsync(['run', '--cache-dir', cache, `${reg.host}/nothere:1`]);
      expect(missing.code).toBe(12);
    } finally {
      await reg.stop();
    }
  });

  it.skipIf(!canRunAsNobody)(
    'rootless: as an unprivileged user (a user namespace), with --writable and a bind mount',
    () => {
      const d = mkdtempSync(join(tmpdir(), 'mkimg-run-rootless-'));
      try {
        chmodSync(d, 0o777);
        writeFileSync(join(d, 'img.tar'), readFileSync(image), { mode: 0o644 });
        writeFileSync(join(d, 'in.txt'), 'host\n', { mode: 0o644 });
        const cmd = mkimgAsNobody(
          [
            'run',
            '--cache-dir',
            join(d, 'cache'),
            '--writable',
            '-v',
            `${d}/in.txt:/in.txt:ro`,
            '--entrypoint=',
            join(d, 'img.tar'),
            'sh',
            '-c',
            'busybox id -u; busybox cat /in.txt; echo w > /app/w && busybox cat /app/w',
          ],
          { HOME: d },
        );
        const r = spawnSync(cmd.argv[0]!, cmd.argv.slice(1), { encoding: 'utf8', timeout: 60_000 });
        cmd.done();
        expect(r).toMatchObject({ status: 0, stdout: '0\nhost\nw\n' });
      } finally {
        rmSync(d, { recursive: true, force: true });
      }
    },
  );

  it('interrupted while unpacking: the half-written layer is removed, exit 128+15', async () => {
    const files: FixtureFile[] = [...bb(), { name: 'many/', type: 'directory' }];
    for (let i = 0; i < 30000; i++) files.push({ name: `many/f${i}`, content: `${i}\n` });
    const dir = join(work, 'big');
    writeLayout(dir, [await layerTar(files, 0)]);
    const icache = join(work, 'icache');
    const child = spawn(process.execPath, [MKIMG, 'run', '--cache-dir', icache, dir], { stdio: 'ignore' });
    const tmps = () => {
      try {
        return readdirSync(join(icache, 'rootfs', 'sha256')).filter((n) => n.startsWith('.tmp-'));
      } catch {
        return [];
      }
    };
    const closed = new Promise<number | null>((res) =>
      child.on('close', (c, sig) => res(c ?? (sig === 'SIGTERM' ? 143 : -1))),
    );
    for (let i = 0; i < 3000 && tmps().length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(tmps()).toHaveLength(1);
    child.kill('SIGTERM');
    expect(await closed).toBe(143);
    expect(tmps()).toEqual([]);
    expect(readdirSync(join(icache, 'rootfs', 'sha256'))).toEqual([]);
  });

  it("a multi-platform index: the host's platform is picked", async () => {
    const amd = join(work, 'mp-amd');
    const arm = join(work, 'mp-arm');
    writeLayout(amd, [await layerTar(bb(), 0)], { cmd: ['/bin/busybox', 'echo', 'amd64'] });
    writeLayout(arm, [await layerTar([{ name: 'x', content: 'arm' }], 0)], { architecture: 'arm64', cmd: ['/x'] });
    const dir = join(work, 'multi');
    mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
    const entries = [];
    for (const [d, a] of [
      [arm, 'arm64'],
      [amd, 'amd64'],
    ] as const) {
      for (const b of readdirSync(join(d, 'blobs', 'sha256')))
        writeFileSync(join(dir, 'blobs', 'sha256', b), readFileSync(join(d, 'blobs', 'sha256', b)));
      const m = JSON.parse(readFileSync(join(d, 'index.json'), 'utf8')).manifests[0];
      entries.push({ ...m, platform: { os: 'linux', architecture: a } });
    }
    writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: entries }));
    expect(run([dir])).toMatchObject({ code: 0, stdout: 'amd64\n' });
    const other = run(['--platform', 'linux/arm64', dir]);
    expect(other.code).toBe(14);
  });

  it('bad input: not an image, an escaping layer, unknown user, another platform; nothing left behind', async () => {
    const junk = join(work, 'junk.tar');
    writeFileSync(junk, 'not a tar at all'.repeat(100));
    const j = run([junk]);
    expect(j.code).toBe(7);
    expect(j.stderr).toMatch(/^mkimg: error: .*junk\.tar/m);
    expect(j.stderr).not.toMatch(/\n\s+at /);

    const target = join(work, 'escape-target');
    mkdirSync(target);
    const evil = join(work, 'evil');
    writeLayout(evil, [
      await layerTar(
        [...bb(), { name: 'out', type: 'symlink', linkname: target }, { name: 'out/pwned', content: 'x' }],
        0,
      ),
    ]);
    const e = run([evil]);
    expect(e.code).toBe(7);
    expect(e.stderr).toMatch(/entry "out\/pwned" would be written through the symlink "out"/);
    expect(readdirSync(target)).toEqual([]);
    const dots = join(work, 'dots');
    writeLayout(dots, [await layerTar([...bb(), { name: '../x', content: 'x' }], 0)]);
    expect(run([dots]).stderr).toMatch(/has a "\.\." component/);
    expect(leftovers()).toEqual([]);

    const u = run(['-u', 'nosuchuser', '--entrypoint=', image, 'true']);
    expect(u.code).toBe(2);
    expect(u.stderr).toMatch(/the image has no user "nosuchuser"/);
    const arm = join(work, 'arm');
    writeLayout(arm, [await layerTar(bb(), 0)], { architecture: 'arm64' });
    const a = run([arm]);
    expect(a.code).toBe(14);
    expect(a.stderr).toMatch(/linux\/arm64 image; this host runs linux\/amd64/);
    expect(run(['--platform', 'linux/arm64', image]).code).toBe(14);
    expect(run(['-w', '/nonexistent', '--entrypoint=', image, 'true']).code).toBe(2);
    expect(run(['--bogus', image]).code).toBe(2);
  });
});

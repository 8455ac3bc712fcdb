import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, linkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeHeader, padding } from '../../src/image/tar-header.js';
import { planLayer, comparePaths, sortByPath, sortKey, type LayerEntry } from '../../src/image/layer.js';
import { writeImageTar, type ImageSpec } from '../../src/image/write-image.js';
import { canonicalJson } from '../../src/util/canonical-json.js';
import { sha256Hex } from '../../src/util/digest.js';

const work = mkdtempSync(join(tmpdir(), 'mkimg-norm-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function tarList(file: string): string[] {
  return execFileSync('tar', ['--numeric-owner', '--full-time', '-tvf', file], {
    encoding: 'utf8',
    env: { ...process.env, TZ: 'UTC' },
  })
    .trim()
    .split('\n');
}

describe('canonical JSON', () => {
  it('sorts keys at every depth and drops undefined', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: undefined } })).toBe(
      '{"a":{"d":[1,{"y":2,"z":1}]},"b":1}',
    );
  });
});

describe('tar headers', () => {
  it('writes USTAR fields GNU tar reads back exactly, with no user/group names', () => {
    const f = join(work, 'h.tar');
    const content = Buffer.from('hello\n');
    writeFileSync(
      f,
      Buffer.concat([
        encodeHeader({ name: 'etc', type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0, mtime: 1700000000 }),
        encodeHeader({
          name: 'etc/motd',
          type: 'file',
          mode: 0o4755,
          uid: 65532,
          gid: 42,
          size: content.length,
          mtime: 1700000000,
        }),
        content,
        Buffer.alloc(padding(content.length)),
        encodeHeader({
          name: 'etc/link',
          type: 'symlink',
          mode: 0o777,
          uid: 0,
          gid: 0,
          size: 0,
          mtime: 1700000000,
          linkname: '/etc/motd',
        }),
        Buffer.alloc(1024),
      ]),
    );
    expect(tarList(f)).toEqual([
      'drwxr-xr-x 0/0               0 2023-11-14 22:13:20 etc/',
      '-rwsr-xr-x 65532/42          6 2023-11-14 22:13:20 etc/motd',
      'lrwxrwxrwx 0/0               0 2023-11-14 22:13:20 etc/link -> /etc/motd',
    ]);
  });

  it('uses the USTAR prefix for long paths and PAX records beyond it, byte-stable', () => {
    const longDir = 'a'.repeat(120);
    const viaPrefix = encodeHeader({
      name: `${longDir}/file`,
      type: 'file',
      mode: 0o644,
      uid: 0,
      gid: 0,
      size: 0,
      mtime: 0,
    });
    expect(viaPrefix.length).toBe(512);
    const huge = 'x/'.repeat(100) + 'y'.repeat(150);
    const pax = encodeHeader({
      name: huge,
      type: 'symlink',
      mode: 0o777,
      uid: 0,
      gid: 0,
      size: 0,
      mtime: 0,
      linkname: 'z'.repeat(200),
      xattrs: { 'security.capability': Buffer.from([1, 0, 0, 2, 0x20, 0, 0, 0]) },
    });
    expect(pax.length % 512).toBe(0);
    expect(pax.length).toBeGreaterThan(512);
    const f = join(work, 'pax.tar');
    writeFileSync(f, Buffer.concat([viaPrefix, pax, Buffer.alloc(1024)]));
    const names = execFileSync('tar', ['-tf', f], { encoding: 'utf8' }).trim().split('\n');
    expect(names).toEqual([`${longDir}/file`, huge]);
    // PAX records are length-prefixed correctly and sorted by key.
    const paxData = pax.subarray(512, 512 + parseInt(pax.subarray(124, 135).toString(), 8)).toString('latin1');
    const keys = [...paxData.matchAll(/^(\d+) ([^=]+)=/gm)].map((m) => m[2]);
    expect(keys).toEqual(['SCHILY.xattr.security.capability', 'linkpath', 'path']);
    let off = 0;
    while (off < paxData.length) {
      const len = parseInt(paxData.slice(off), 10);
      expect(paxData[off + len - 1]).toBe('\n');
      off += len;
    }
    expect(off).toBe(paxData.length);
  });
});

describe('layer plan', () => {
  const e = (path: string, type: LayerEntry['type'] = 'file', extra: Partial<LayerEntry> = {}): LayerEntry => ({
    path,
    type,
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: 0,
    hostPath: '/dev/null',
    ...extra,
  });

  it('orders by path components, parents first, and adds implied parents', () => {
    const plan = planLayer([e('/a-c'), e('/a/b'), e('/usr/lib/x/y'), e('/a', 'dir')]);
    expect(plan.map((p) => p.name)).toEqual(['a', 'a/b', 'a-c', 'usr', 'usr/lib', 'usr/lib/x', 'usr/lib/x/y']);
    expect(plan.find((p) => p.name === 'usr/lib')!.entry).toMatchObject({ type: 'dir', mode: 0o755, uid: 0, gid: 0 });
  });

  it('makes the first name of a hardlink group in sort order the file, whatever the input order', () => {
    const f = e('/usr/bin/zz', 'file', { size: 3, hostPath: '/etc/hostname' });
    const links = [
      e('/usr/bin/aa', 'hardlink', { linkTarget: '/usr/bin/zz' }),
      e('/usr/bin/mm', 'hardlink', { linkTarget: '/usr/bin/zz' }),
    ];
    const p1 = planLayer([f, ...links]);
    const p2 = planLayer([...links].reverse().concat([f]));
    const show = (p: ReturnType<typeof planLayer>) => p.map((x) => `${x.name}:${x.entry.type}:${x.hardlinkTo ?? ''}`);
    expect(show(p1)).toEqual(show(p2));
    expect(show(p1).slice(2)).toEqual([
      'usr/bin/aa:file:',
      'usr/bin/mm:hardlink:usr/bin/aa',
      'usr/bin/zz:hardlink:usr/bin/aa',
    ]);
  });

  it('refuses duplicates', () => {
    expect(() => planLayer([e('/x'), e('/x')])).toThrow(/twice/);
  });

  it('compares bytewise with / lowest', () => {
    expect(['b', 'a/z', 'a.b', 'a'].sort(comparePaths)).toEqual(['a', 'a/z', 'a.b', 'b']);
  });

  it('sortByPath orders as comparePaths, with and without characters outside the BMP', () => {
    let seed = 7;
    const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const alphabet = ['a', 'b', '/', '-', '.', 'é', '\ue000', '\ufffd', '字'];
    const astral = [...alphabet, '😀', '𝄞'];
    for (const chars of [alphabet, astral]) {
      const paths = new Set<string>();
      while (paths.size < 2000)
        paths.add(
          Array.from({ length: 1 + Math.floor(rnd() * 6) }, () => chars[Math.floor(rnd() * chars.length)]).join(''),
        );
      const input = [...paths];
      expect(sortByPath(input, (p) => p)).toEqual([...input].sort(comparePaths));
    }
  });

  it('comparePaths orders as the sort keys do (lone surrogates, NUL and "/" included)', () => {
    let seed = 11;
    const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const chars = ['a', '/', '\u0000', '-', 'é', '\ue000', '\uffff', '😀', '\ud83d', '\ude00', '字'];
    const word = () =>
      Array.from({ length: Math.floor(rnd() * 5) }, () => chars[Math.floor(rnd() * chars.length)]).join('');
    for (let i = 0; i < 5000; i++) {
      const a = word();
      const b = rnd() < 0.3 ? a + word() : word();
      expect(Math.sign(comparePaths(a, b))).toBe(Math.sign(Buffer.compare(sortKey(a), sortKey(b))));
    }
  });
});

describe('image tar', () => {
  const spec: ImageSpec = {
    name: 'test/norm',
    tag: '1.0',
    architecture: 'amd64',
    sourceDateEpoch: 1700000000,
    config: {
      entrypoint: ['/bin/sh'],
      cmd: ['-c', 'echo hi'],
      env: { LANG: 'C.UTF-8' },
      labels: { a: 'b' },
      exposedPorts: ['8080/tcp'],
      user: '65532:65532',
      workdir: '/',
    },
    manifestSha256: 'ab'.repeat(32),
  };

  function tree(dir: string, reverse: boolean): LayerEntry[] {
    mkdirSync(join(dir, 'app'), { recursive: true });
    const names = ['b.txt', 'a.txt', 'c.bin'];
    const order = reverse ? [...names].reverse() : names;
    for (const n of order) writeFileSync(join(dir, 'app', n), `content of ${n}\n`.repeat(100));
    linkSync(join(dir, 'app', 'a.txt'), join(dir, 'app', 'hard'));
    const entries: LayerEntry[] = [
      { path: '/app', type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0 },
      ...order.map((n) => ({
        path: `/app/${n}`,
        type: 'file' as const,
        mode: 0o644,
        uid: 0,
        gid: 0,
        size: 1100 + 100 * n.length - 500,
        hostPath: join(dir, 'app', n),
      })),
      { path: '/app/hard', type: 'hardlink', mode: 0o644, uid: 0, gid: 0, size: 0, linkTarget: '/app/a.txt' },
      { path: '/app/link', type: 'symlink', mode: 0o777, uid: 0, gid: 0, size: 0, linkTarget: 'a.txt' },
    ];
    for (const x of entries) if (x.type === 'file') x.size = readFileSync(x.hostPath!).length;
    return reverse ? entries.reverse() : entries;
  }

  it('is byte-identical for shuffled input and accepted by skopeo and umoci', () => {
    const d1 = join(work, 't1');
    const d2 = join(work, 't2');
    const o1 = join(work, 'one.tar');
    const o2 = join(work, 'two.tar');
    const r1 = writeImageTar(spec, tree(d1, false), o1);
    const r2 = writeImageTar(spec, tree(d2, true), o2);
    expect(sha256Hex(readFileSync(o1))).toBe(sha256Hex(readFileSync(o2)));
    expect(r1).toMatchObject({ imageId: r2.imageId, manifestDigest: r2.manifestDigest });
    expect(r1.sizeBytes).toBe(readFileSync(o1).length);
    // No temp files left beside the output.
    expect(
      execFileSync('ls', ['-A', work], { encoding: 'utf8' })
        .split('\n')
        .filter((n) => n.startsWith('.')),
    ).toEqual([]);

    const outer = tarList(o1).map((l) => l.split(/\s+/).slice(5).join(' '));
    expect(outer[0]).toBe('blobs/');
    expect(outer.slice(-3)).toEqual(['index.json', 'manifest.json', 'oci-layout']);

    const inspect = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', `oci-archive:${o1}`], { encoding: 'utf8' }));
    expect(inspect.config.digest).toBe(r1.imageId);
    const cfg = JSON.parse(execFileSync('skopeo', ['inspect', '--config', `oci-archive:${o1}`], { encoding: 'utf8' }));
    expect(cfg.config.Labels['org.mkimg.manifest.sha256']).toBe('ab'.repeat(32));
    expect(cfg.created).toBe('2023-11-14T22:13:20Z');

    const layout = join(work, 'layout');
    mkdirSync(layout);
    execFileSync('tar', ['-xf', o1, '-C', layout]);
    const bundle = join(work, 'bundle');
    execFileSync('umoci', ['unpack', '--rootless', '--image', `${layout}:1.0`, bundle], { stdio: 'pipe' });
    const rootfs = join(bundle, 'rootfs');
    expect(readFileSync(join(rootfs, 'app/a.txt'), 'utf8')).toContain('content of a.txt');
    expect(execFileSync('stat', ['-c', '%h', join(rootfs, 'app/hard')], { encoding: 'utf8' }).trim()).toBe('2');
  });

  it('checks content read from outside the staging root against its digest, and leaves no output on a mismatch', () => {
    const dir = join(work, 'verify');
    mkdirSync(dir);
    const f = join(dir, 'input.txt');
    writeFileSync(f, 'pinned content\n');
    const good = sha256Hex(readFileSync(f));
    const entry = (sha: string): LayerEntry[] => [
      { path: '/input.txt', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 15, hostPath: f, verifySha256: sha },
    ];
    const out = join(dir, 'ok.tar');
    writeImageTar(spec, entry(good), out);
    expect(readFileSync(out).length).toBeGreaterThan(0);
    const bad = join(dir, 'bad.tar');
    expect(() => writeImageTar(spec, entry('0'.repeat(64)), bad)).toThrow(/changed after its pin was checked/);
    expect(execFileSync('ls', ['-A', dir], { encoding: 'utf8' }).trim().split('\n').sort()).toEqual([
      'input.txt',
      'ok.tar',
    ]);
  });
});

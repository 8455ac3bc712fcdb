import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { unpackDeb } from '../../src/debian/unpack.js';
import { MkimgError } from '../../src/util/errors.js';
import { buildDeb, mergedUsrItems, sha256Of, tempDir, type TreeItem } from '../helpers/debbuild.js';
import { writeDeb, type TarSpec } from '../helpers/hostile-deb.js';
import { sentinelIntact, sentinelRoots } from '../helpers/sentinel-root.js';

let work: string;
let debs: string;
beforeAll(() => {
  work = tempDir('extract');
  debs = join(work, 'debs');
  mkdirSync(debs);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const freshRoot = sentinelRoots(() => work);

async function expectHostile(p: Promise<unknown>, re: RegExp, kind = 'input'): Promise<MkimgError> {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(e, 'expected an MkimgError').toBeInstanceOf(MkimgError);
  expect((e as MkimgError).kind).toBe(kind);
  expect((e as MkimgError).message).toMatch(re);
  return e as MkimgError;
}

describe('unpackDeb with dpkg-deb packages', () => {
  test('merged-/usr landing, modes, owners, symlinks, hardlinks, control data', async () => {
    const { root } = await freshRoot();
    const items = mergedUsrItems();
    const b = buildDeb(debs, {
      name: 'merged',
      items,
      compression: 'xz',
      extraControl: { postinst: `#!/bin/sh\ntouch ${work}/POSTINST-RAN\n`, md5sums: 'abc  usr/bin/foo\n' },
    });
    const pkg = await unpackDeb(root, b.path, b.sha256);

    expect(pkg).toMatchObject({
      name: 'merged',
      version: '1.0',
      architecture: 'amd64',
      sha256: b.sha256,
      md5sums: 'abc  usr/bin/foo\n',
    });
    expect(pkg.control).toMatch(/^Package: merged\n/);
    expect(root.packages).toEqual([pkg]);
    expect(existsSync(join(work, 'POSTINST-RAN'))).toBe(false);

    // merged-/usr: /bin/foo is /usr/bin/foo; nothing indexed under /bin
    const foo = root.entries.get('/usr/bin/foo')!;
    expect(foo).toMatchObject({
      type: 'file',
      mode: 0o755,
      uid: 0,
      gid: 0,
      size: 10,
      origin: 'pkg:merged',
      hostPath: root.dir + '/usr/bin/foo',
    });
    expect(foo.sha256).toBe(sha256Of(root.dir + '/usr/bin/foo'));
    expect(root.entries.get('/usr/sbin/bar')).toMatchObject({ type: 'file', mode: 0o700 });
    expect([...root.entries.keys()].filter((p) => /^\/(bin|sbin|lib|lib64)\//.test(p))).toEqual([]);
    expect(lstatSync(root.dir + '/bin').isSymbolicLink()).toBe(true);
    expect(readlinkSync(root.dir + '/usr/lib/x86_64-linux-gnu/libz.so.1')).toBe('libz.so.1.2');
    expect(root.entries.get('/usr/lib/x86_64-linux-gnu/libz.so.1')).toMatchObject({
      type: 'symlink',
      linkTarget: 'libz.so.1.2',
      mode: 0o777,
    });

    // true modes/owners in the index; host gets mode & 0777, dirs at least 0755
    expect(root.entries.get('/usr/bin/passwd')).toMatchObject({ mode: 0o4755 });
    expect(statSync(root.dir + '/usr/bin/passwd').mode & 0o7777).toBe(0o755);
    expect(root.entries.get('/etc/shadowish')).toMatchObject({ mode: 0o640, uid: 0, gid: 42 });
    expect(statSync(root.dir + '/etc/shadowish').mode & 0o7777).toBe(0o640);
    expect(root.entries.get('/var/spool/app')).toMatchObject({ type: 'dir', mode: 0o1730, uid: 5, gid: 6 });
    expect(statSync(root.dir + '/var/spool/app').mode & 0o7777).toBe(0o775);

    // absolute symlinks are created as they are
    expect(readlinkSync(root.dir + '/etc/alternatives/editor')).toBe('/usr/bin/foo');

    // hardlink: one inode on disk; the index names the first name
    const a = statSync(root.dir + '/usr/bin/foo');
    const h = statSync(root.dir + '/usr/bin/foo2');
    expect(a.ino).toBe(h.ino);
    const pair = [root.entries.get('/usr/bin/foo')!, root.entries.get('/usr/bin/foo2')!];
    const hl = pair.find((e) => e.type === 'hardlink')!;
    const first = pair.find((e) => e.type === 'file')!;
    expect(hl.linkTarget).toBe(first.path);

    // paths: resolved image paths; dirs the package introduced; no layout dirs
    expect(pkg.paths).toContain('/usr/bin/foo');
    expect(pkg.paths).toContain('/usr/lib/x86_64-linux-gnu');
    expect(pkg.paths).toContain('/etc/alternatives/editor');
    expect(pkg.paths).not.toContain('/usr/bin');
    expect(pkg.paths).not.toContain('/bin/foo');
    expect(readdirSync(root.dir).filter((f) => f.startsWith('.mkimg-tmp'))).toEqual([]);
  });

  test('the staged tree agrees with dpkg-deb -x, modulo merged-/usr', async () => {
    const { root, caseDir } = await freshRoot();
    const items: TreeItem[] = [];
    for (let i = 0; i < 60; i++)
      items.push({
        path: `usr/share/zoneinfo/Area${i % 7}/City${i}`,
        type: 'file',
        content: `tz ${i}\n`.repeat(i + 1),
        mode: i % 3 ? 0o644 : 0o755,
      });
    items.push({ path: 'lib/x86_64-linux-gnu/ld.so', type: 'file', content: 'ld', mode: 0o755 });
    items.push({ path: 'sbin/ldconfig', type: 'file', content: 'ldc', mode: 0o755 });
    items.push({ path: 'usr/share/zoneinfo/localtime', type: 'symlink', target: 'Area0/City0' });
    items.push({ path: 'usr/share/zoneinfo/posix', type: 'symlink', target: '.' });
    const b = buildDeb(debs, { name: 'cmp', items, compression: 'xz', rootOwner: true });
    await unpackDeb(root, b.path, b.sha256);
    const x = join(caseDir, 'x');
    execFileSync('dpkg-deb', ['-x', b.path, x]);
    const map = (p: string) => p.replace(/^\/(bin|sbin|lib|lib64)(\/|$)/, '/usr/$1$2');
    let files = 0;
    const walk = (d: string, rel: string) => {
      for (const name of readdirSync(d)) {
        const host = join(d, name);
        const r = `${rel}/${name}`;
        const st = lstatSync(host);
        const e = root.entries.get(map(r));
        expect(e, r).toBeDefined();
        if (st.isDirectory()) {
          expect(e!.type).toBe('dir');
          walk(host, r);
        } else if (st.isSymbolicLink()) expect(e).toMatchObject({ type: 'symlink', linkTarget: readlinkSync(host) });
        else {
          expect(e).toMatchObject({ type: 'file', sha256: sha256Of(host), mode: st.mode & 0o7777, size: st.size });
          files++;
        }
      }
    };
    walk(x, '');
    expect(files).toBe(62);
  });

  test('every compression gives the same index', async () => {
    const items: TreeItem[] = [
      { path: 'usr/share/a/b.txt', type: 'file', content: 'b'.repeat(70000) },
      { path: 'bin/x', type: 'file', content: 'x', mode: 0o755 },
    ];
    const indexes: string[] = [];
    for (const z of ['xz', 'gzip', 'zstd', 'none'] as const) {
      const { root } = await freshRoot();
      const b = buildDeb(debs, { name: `z${z}`, items, compression: z, rootOwner: true });
      await unpackDeb(root, b.path, b.sha256);
      indexes.push(
        JSON.stringify([...root.entries.values()].map((e) => [e.path, e.type, e.mode, e.size, e.sha256 ?? '']).sort()),
      );
    }
    expect(new Set(indexes).size).toBe(1);
    expect(indexes[0]).toContain('/usr/bin/x');
  });

  test('two packages: shared dirs kept, identical files fine, different content refused naming both', async () => {
    const { root } = await freshRoot();
    const a = buildDeb(debs, {
      name: 'pa',
      items: [
        { path: 'usr/share/common/same', type: 'file', content: 'same' },
        { path: 'etc/conf', type: 'file', content: 'A' },
        { path: 'opt/d', type: 'dir', mode: 0o700 },
      ],
    });
    const b = buildDeb(debs, {
      name: 'pb',
      items: [
        { path: 'usr/share/common/same', type: 'file', content: 'same' },
        { path: 'opt/d', type: 'dir', mode: 0o755 },
        { path: 'opt/d/f', type: 'file', content: 'f' },
      ],
    });
    const c = buildDeb(debs, { name: 'pc', items: [{ path: 'etc/conf', type: 'file', content: 'C' }] });
    await unpackDeb(root, a.path, a.sha256);
    const pb = await unpackDeb(root, b.path, b.sha256);
    expect(root.entries.get('/usr/share/common/same')!.origin).toBe('pkg:pa');
    expect(pb.paths).toContain('/usr/share/common/same');
    expect(root.entries.get('/opt/d')).toMatchObject({ mode: 0o700, origin: 'pkg:pa' });
    expect(root.entries.get('/opt/d/f')!.origin).toBe('pkg:pb');
    const e = await expectHostile(
      unpackDeb(root, c.path, c.sha256),
      /\/etc\/conf: package pa and package pc both ship it, with different content/,
    );
    expect(e.details).toMatchObject({ path: '/etc/conf', packages: ['pkg:pa', 'pkg:pc'] });
    expect(readFileSync(root.dir + '/etc/conf', 'utf8')).toBe('A');
    expect(readdirSync(root.dir + '/etc').filter((f) => f.startsWith('.mkimg-tmp'))).toEqual([]);
  });

  test('a wrong sha256 writes nothing and names both digests', async () => {
    const { root } = await freshRoot();
    const b = buildDeb(debs, { name: 'pinned', items: [{ path: 'etc/x', type: 'file', content: 'x' }] });
    const wrong = '0'.repeat(64);
    const e = await expectHostile(
      unpackDeb(root, b.path, wrong),
      new RegExp(`sha256 mismatch: expected ${wrong}, got ${b.sha256}`),
    );
    expect(e.message).toContain(b.path);
    expect(readdirSync(root.dir).sort()).toEqual(['bin', 'lib', 'lib64', 'sbin', 'usr']);
    expect(root.entries.size).toBe(9);
    expect(root.packages).toEqual([]);
  });
});

describe('hostile packages', () => {
  async function attack(data: TarSpec[], re: RegExp, opts: { gzip?: boolean } = {}) {
    const env = await freshRoot();
    const p = join(env.caseDir, 'evil.deb');
    writeDeb(p, { data, gzip: opts.gzip });
    const err = await expectHostile(unpackDeb(env.root, p, sha256Of(p)), re);
    sentinelIntact(env.sentinel);
    return { ...env, err };
  }

  test('"../" names aimed at the sentinel and at the host /etc', async () => {
    const { err } = await attack(
      [
        { name: './etc/', type: '5' },
        { name: '../sentinel/evil', content: 'pwned' },
      ],
      /hostile package evil .*"\.\.\/sentinel\/evil".*"\.\." component/,
    );
    expect(err.hint).toMatch(/nothing outside the staging root/);
    await attack([{ name: './../../../../../../etc/mkimg-evil', content: 'pwned' }], /"\.\." component/);
    expect(existsSync('/etc/mkimg-evil')).toBe(false);
  });

  test('absolute names', async () => {
    const { root } = await attack([{ name: '/mkimg-abs/evil', content: 'pwned' }], /is absolute/);
    expect(existsSync('/mkimg-abs')).toBe(false);
    expect(existsSync(root.dir + '/mkimg-abs')).toBe(false);
  });

  test('a symlink that climbs out, then a file through it', async () => {
    await attack(
      [
        { name: './x', type: '2', linkname: '../../../../tmp' },
        { name: './x/mkimg-evil', content: 'pwned' },
      ],
      /"\.\/x\/mkimg-evil": resolving \/x through the symlink \/x climbs above the image root/,
    );
    expect(existsSync('/tmp/mkimg-evil')).toBe(false);
    await attack(
      [
        { name: './usr/share/', type: '5' },
        { name: './usr/share/up', type: '2', linkname: '../../../sentinel' },
        { name: './usr/share/up/evil', content: 'pwned' },
      ],
      /climbs above the image root/,
    );
    // a directory entry through such a link is refused too
    await attack(
      [
        { name: './y', type: '2', linkname: '../..' },
        { name: './y/sentinel/', type: '5' },
      ],
      /climbs above the image root/,
    );
  });

  test('an absolute symlink is resolved inside the root, never on the host', async () => {
    const env = await freshRoot();
    const p = join(env.caseDir, 'abs.deb');
    writeDeb(p, {
      name: 'abslink',
      data: [
        { name: './z', type: '2', linkname: env.sentinel },
        { name: './z/evil', content: 'contained' },
      ],
    });
    await unpackDeb(env.root, p, sha256Of(p));
    sentinelIntact(env.sentinel);
    expect(readFileSync(env.root.dir + env.sentinel + '/evil', 'utf8')).toBe('contained');
    expect(env.root.entries.get(env.sentinel + '/evil')).toMatchObject({ type: 'file', origin: 'pkg:abslink' });
  });

  test('a file shipped over a symlink is not written through it', async () => {
    const env = await freshRoot();
    const p = join(env.caseDir, 'over.deb');
    writeDeb(p, {
      data: [
        { name: './s', type: '2', linkname: join(env.sentinel, 'target') },
        { name: './s', content: 'overwrite' },
      ],
    });
    await expectHostile(unpackDeb(env.root, p, sha256Of(p)), /\/s: .*a file here and a symlink there/);
    sentinelIntact(env.sentinel);
  });

  test('hardlinks to host files, outside the root, or to files not yet extracted', async () => {
    const before = statSync('/etc/passwd').nlink;
    await attack([{ name: './pw', type: '1', linkname: '/etc/passwd' }], /hardlink target "\/etc\/passwd" is absolute/);
    await attack([{ name: './pw', type: '1', linkname: '../../../../../etc/passwd' }], /"\.\." component/);
    await attack(
      [
        { name: './etc/', type: '5' },
        { name: './pw', type: '1', linkname: './etc/passwd' },
      ],
      /hardlink target "\.\/etc\/passwd" is not a file this package already extracted/,
    );
    await attack(
      [
        { name: './l', type: '2', linkname: '/etc' },
        { name: './pw', type: '1', linkname: './l/passwd' },
      ],
      /not a file this package already extracted/,
    );
    await attack(
      [
        { name: './l', type: '2', linkname: '../../sentinel' },
        { name: './pw', type: '1', linkname: './l/target' },
      ],
      /resolves above the image root/,
    );
    expect(statSync('/etc/passwd').nlink).toBe(before);
  });

  test('device nodes and fifos are refused with the reason', async () => {
    const { root } = await attack(
      [
        { name: './dev/', type: '5' },
        { name: './dev/sda', type: '4', devmajor: 8, devminor: 0 },
      ],
      /block device node \(8,0\): packages must not ship device nodes/,
    );
    expect(existsSync(root.dir + '/dev/sda')).toBe(false);
    await attack([{ name: './mem', type: '3', devmajor: 1, devminor: 1 }], /character device node/);
    await attack([{ name: './pipe', type: '6' }], /named pipe \(fifo\)/);
  });

  test('truncated archive and wrong member order', async () => {
    const env = await freshRoot();
    const p = join(env.caseDir, 'trunc.deb');
    const full = writeDeb(p, { gzip: true, data: [{ name: './big', content: Buffer.alloc(100_000, 3) }] });
    writeFileSync(p, full.subarray(0, full.length - 40));
    await expectHostile(unpackDeb(env.root, p, sha256Of(p)), /truncated|corrupt/);
    const q = join(env.caseDir, 'order.deb');
    writeDeb(q, { data: [{ name: './a', content: 'a' }], members: (s) => [s.binary, s.data, s.control] });
    await expectHostile(unpackDeb(env.root, q, sha256Of(q)), /found member "data\.tar" where control\.tar/);
    sentinelIntact(env.sentinel);
    expect(existsSync(env.root.dir + '/big')).toBe(false);
  });

  test('security.capability from PAX lands in the index; setuid never on the host', async () => {
    const env = await freshRoot();
    const cap = Buffer.from('0100000200200000000000000000000000000000', 'hex');
    const p = join(env.caseDir, 'cap.deb');
    writeDeb(p, {
      name: 'iputils',
      data: [
        { name: './bin/', type: '5' },
        {
          name: './bin/ping',
          content: 'ping',
          mode: 0o6755,
          uid: 0,
          gid: 0,
          pax: { 'SCHILY.xattr.security.capability': cap },
        },
      ],
    });
    await unpackDeb(env.root, p, sha256Of(p));
    const e = env.root.entries.get('/usr/bin/ping')!;
    expect(e.mode).toBe(0o6755);
    expect(e.capability!.equals(cap)).toBe(true);
    expect(statSync(env.root.dir + '/usr/bin/ping').mode & 0o7777).toBe(0o755);
  });
});

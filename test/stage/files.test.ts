import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  chmodSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { createStagingRoot } from '../../src/stage/root.js';
import { addFileInputs, inputDigest, treeRows } from '../../src/stage/files.js';
import type { StagingRoot } from '../../src/stage/types.js';
import { canonicalJson } from '../../src/util/canonical-json.js';
import { MkimgError } from '../../src/util/errors.js';
import { tempDir } from '../helpers/debbuild.js';

let work: string;
beforeAll(() => {
  work = tempDir('files');
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

let n = 0;
async function freshRoot(): Promise<StagingRoot> {
  return createStagingRoot(join(work, `root-${++n}`));
}

function indexOf(root: StagingRoot) {
  return [...root.entries.values()]
    .map(({ hostPath, capability, ...rest }) => {
      void hostPath;
      void capability;
      return rest;
    })
    .sort((a, b) => (a.path < b.path ? -1 : 1));
}

async function expectError(p: Promise<unknown>, kind: string, re: RegExp): Promise<MkimgError> {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(MkimgError);
  expect((e as MkimgError).kind).toBe(kind);
  expect((e as MkimgError).message).toMatch(re);
  return e as MkimgError;
}

/** The same tree, created in the given order, with host modes/mtimes that must not matter. */
function makeTree(dir: string, order: 'forward' | 'reverse', mtime: number): void {
  const steps: (() => void)[] = [
    () => mkdirSync(join(dir, 'conf.d'), { recursive: true }),
    () => writeFileSync(join(dir, 'conf.d', 'a.conf'), 'a=1\n'),
    () => writeFileSync(join(dir, 'run.sh'), '#!/bin/sh\necho hi\n'),
    () => writeFileSync(join(dir, 'readme'), 'hello\n'),
    () => symlinkSync('run.sh', join(dir, 'start')),
    () => symlinkSync('../../../etc/passwd', join(dir, 'escape')),
    () => mkdirSync(join(dir, 'empty'), { recursive: true }),
  ];
  mkdirSync(dir, { recursive: true });
  if (order === 'reverse') {
    mkdirSync(join(dir, 'conf.d'), { recursive: true });
    for (const s of steps.slice().reverse()) s();
  } else for (const s of steps) s();
  // host modes that only differ where git would not see a difference
  chmodSync(join(dir, 'run.sh'), order === 'forward' ? 0o755 : 0o700);
  chmodSync(join(dir, 'readme'), order === 'forward' ? 0o644 : 0o600);
  chmodSync(join(dir, 'conf.d'), order === 'forward' ? 0o755 : 0o700);
  for (const f of ['conf.d/a.conf', 'run.sh', 'readme', 'conf.d', 'empty', '']) utimesSync(join(dir, f), mtime, mtime);
}

describe('addFileInputs', () => {
  test('single files: 0644/0755 from the exec bit, owner 0:0, parents created, merged-/usr', async () => {
    const root = await freshRoot();
    const src = join(work, 'single');
    mkdirSync(src);
    writeFileSync(join(src, 'app.conf'), 'x=1\n');
    chmodSync(join(src, 'app.conf'), 0o600);
    writeFileSync(join(src, 'tool'), '#!/bin/sh\n');
    chmodSync(join(src, 'tool'), 0o744);
    await addFileInputs(root, [
      { src: join(src, 'app.conf'), dest: '/etc/app/app.conf' },
      { src: join(src, 'tool'), dest: '/bin/tool' },
    ]);
    expect(root.entries.get('/etc/app/app.conf')).toMatchObject({
      type: 'file',
      mode: 0o644,
      uid: 0,
      gid: 0,
      size: 4,
      origin: 'file:/etc/app/app.conf',
      sha256: createHash('sha256').update('x=1\n').digest('hex'),
    });
    expect(root.entries.get('/etc/app')).toMatchObject({
      type: 'dir',
      mode: 0o755,
      uid: 0,
      gid: 0,
      origin: 'file:/etc/app/app.conf',
    });
    expect(root.entries.get('/etc')).toMatchObject({ type: 'dir', mode: 0o755 });
    expect(root.entries.get('/usr/bin/tool')).toMatchObject({ type: 'file', mode: 0o755, origin: 'file:/bin/tool' });
    expect(root.entries.has('/bin/tool')).toBe(false);
    expect(readFileSync(root.dir + '/usr/bin/tool', 'utf8')).toBe('#!/bin/sh\n');
    expect(statSync(root.dir + '/etc/app/app.conf').mode & 0o777).toBe(0o644);
    expect(statSync(root.dir + '/usr/bin/tool').mode & 0o777).toBe(0o755);
  });

  test('mode, uid and gid overrides', async () => {
    const root = await freshRoot();
    const f = join(work, 'secret');
    writeFileSync(f, 's');
    const d = join(work, 'owned');
    mkdirSync(join(d, 'sub'), { recursive: true });
    writeFileSync(join(d, 'sub', 'x'), 'x');
    await addFileInputs(root, [
      { src: f, dest: '/etc/secret', mode: 0o400, uid: 1000, gid: 1001 },
      { src: d, dest: '/srv/owned', mode: 0o640, uid: 7, gid: 8 },
    ]);
    expect(root.entries.get('/etc/secret')).toMatchObject({ mode: 0o400, uid: 1000, gid: 1001 });
    expect(root.entries.get('/srv/owned')).toMatchObject({ type: 'dir', mode: 0o755, uid: 7, gid: 8 });
    expect(root.entries.get('/srv/owned/sub')).toMatchObject({ type: 'dir', mode: 0o755, uid: 7, gid: 8 });
    expect(root.entries.get('/srv/owned/sub/x')).toMatchObject({ type: 'file', mode: 0o640, uid: 7, gid: 8 });
    expect(root.entries.get('/srv')).toMatchObject({ mode: 0o755, uid: 0, gid: 0 });
  });

  test('directory trees: symlinks kept as links and never followed; creation order and mtimes do not leak', async () => {
    const a = join(work, 'tree-a');
    const b = join(work, 'tree-b');
    makeTree(a, 'forward', 1_000_000);
    makeTree(b, 'reverse', 2_000_000_000);
    const ra = await freshRoot();
    const rb = await freshRoot();
    await addFileInputs(ra, [{ src: a, dest: '/opt/app' }]);
    await addFileInputs(rb, [{ src: b, dest: '/opt/app' }]);
    expect(indexOf(ra)).toEqual(indexOf(rb));
    const got = new Map(indexOf(ra).map((e) => [e.path, e]));
    expect(got.get('/opt/app/run.sh')).toMatchObject({ type: 'file', mode: 0o755 });
    expect(got.get('/opt/app/readme')).toMatchObject({ type: 'file', mode: 0o644 });
    expect(got.get('/opt/app/conf.d')).toMatchObject({ type: 'dir', mode: 0o755 });
    expect(got.get('/opt/app/empty')).toMatchObject({ type: 'dir', mode: 0o755 });
    expect(got.get('/opt/app/start')).toMatchObject({ type: 'symlink', linkTarget: 'run.sh', mode: 0o777 });
    expect(got.get('/opt/app/escape')).toMatchObject({ type: 'symlink', linkTarget: '../../../etc/passwd' });
    expect(lstatSync(ra.dir + '/opt/app/escape').isSymbolicLink()).toBe(true);
    expect(readlinkSync(ra.dir + '/opt/app/escape')).toBe('../../../etc/passwd');
    expect(await inputDigest(a)).toBe(await inputDigest(b));
  });

  test('materialize: false indexes a tree in place, reading nothing: same index but for the digests; pins checked against what is recorded', async () => {
    const a = join(work, 'tree-inplace');
    makeTree(a, 'forward', 1_000_000);
    const copied = await freshRoot();
    const inPlace = await freshRoot();
    const sha256 = await inputDigest(a);
    await addFileInputs(copied, [{ src: a, dest: '/opt/app', sha256 }]);
    const pins = await addFileInputs(inPlace, [{ src: a, dest: '/opt/app', sha256 }], { materialize: false });
    const noDigests = (root: StagingRoot) => indexOf(root).map(({ sha256: _a, sha1: _b, ...rest }) => rest);
    expect(noDigests(inPlace)).toEqual(noDigests(copied));
    const run = inPlace.entries.get('/opt/app/run.sh')!;
    expect(run.hostPath).toBe(join(a, 'run.sh'));
    expect(() => lstatSync(inPlace.dir + '/opt/app/run.sh')).toThrow();
    expect(run.sha256).toBeUndefined();
    // What the layer writer records is what the pin is checked against; files it did not read are read by check().
    const bytes = readFileSync(join(a, 'run.sh'));
    const digests = (b: Buffer) => ({
      sha256: createHash('sha256').update(b).digest('hex'),
      sha1: createHash('sha1').update(b).digest('hex'),
      size: b.length,
    });
    pins.record(join(a, 'run.sh'), digests(bytes));
    expect(() => pins.check()).not.toThrow();
    // A second read of one file must give the same bytes.
    expect(() => pins.record(join(a, 'run.sh'), digests(Buffer.from('other')))).toThrow(
      /run\.sh changed while it was being read/,
    );
    // Bytes recorded that are not the pinned ones fail the check, naming the input.
    const other = await addFileInputs(await freshRoot(), [{ src: a, dest: '/opt/app', sha256 }], {
      materialize: false,
    });
    other.record(join(a, 'readme'), digests(Buffer.from('not the readme\n')));
    expect(() => other.check()).toThrow(
      new RegExp(`files\\[0\\]\\.src: ${a} changed: expected sha256 ${sha256}, got [0-9a-f]{64}`),
    );
  });

  test('a sha256 pin is checked before anything is written', async () => {
    const root = await freshRoot();
    const ok = join(work, 'ok.txt');
    const changed = join(work, 'changed.txt');
    writeFileSync(ok, 'ok');
    writeFileSync(changed, 'new content');
    const stale = createHash('sha256').update('old content').digest('hex');
    const actual = createHash('sha256').update('new content').digest('hex');
    const e = await expectError(
      addFileInputs(root, [
        { src: ok, dest: '/etc/ok.txt', sha256: await inputDigest(ok) },
        { src: changed, dest: '/etc/changed.txt', sha256: stale },
      ]),
      'input',
      new RegExp(`files\\[1\\]\\.src: .*changed\\.txt changed: expected sha256 ${stale}, got ${actual}`),
    );
    expect(e.hint).toMatch(/mkimg lock/);
    expect(root.entries.size).toBe(9);
    expect(() => statSync(root.dir + '/etc')).toThrow();
  });

  test('a fifo (or socket, device) in a tree is a manifest error naming it, whether staged, indexed or locked', async () => {
    const tree = join(work, 'tree-fifo');
    mkdirSync(join(tree, 'sub'), { recursive: true });
    writeFileSync(join(tree, 'a.txt'), 'a');
    execFileSync('mkfifo', [join(tree, 'sub', 'pipe')]);
    const re = new RegExp(`files\\[0\\]\\.src: ${tree}/sub/pipe is neither a file, a directory nor a symlink`);
    await expectError(addFileInputs(await freshRoot(), [{ src: tree, dest: '/opt/t' }]), 'manifest', re);
    await expectError(
      addFileInputs(await freshRoot(), [{ src: tree, dest: '/opt/t' }], { materialize: false }),
      'manifest',
      re,
    );
    await expectError(inputDigest(tree, 'files[0].src'), 'manifest', re);
  });

  test('missing src is a manifest error naming the path; bad dest too', async () => {
    const root = await freshRoot();
    const missing = join(work, 'does-not-exist');
    await expectError(
      addFileInputs(root, [{ src: missing, dest: '/x' }]),
      'manifest',
      new RegExp(`files\\[0\\]\\.src: ${missing} does not exist`),
    );
    writeFileSync(join(work, 'f'), 'f');
    await expectError(
      addFileInputs(root, [{ src: join(work, 'f'), dest: '/etc/../../x' }]),
      'manifest',
      /files\[0\]\.dest: .* must not contain "\.\."/,
    );
    await expectError(
      addFileInputs(root, [{ src: join(work, 'f'), dest: 'relative' }]),
      'manifest',
      /must be an absolute image path/,
    );
  });

  test('files replace a file or link already staged, never a directory', async () => {
    const root = await freshRoot();
    const f = join(work, 'override');
    writeFileSync(f, 'mine');
    mkdirSync(root.dir + '/etc');
    writeFileSync(root.dir + '/etc/nsswitch.conf', 'pkg');
    root.entries.set('/etc/nsswitch.conf', {
      path: '/etc/nsswitch.conf',
      type: 'file',
      mode: 0o644,
      uid: 0,
      gid: 0,
      size: 3,
      origin: 'pkg:base-files',
    });
    symlinkSync('/etc/passwd', root.dir + '/etc/link');
    await addFileInputs(root, [
      { src: f, dest: '/etc/nsswitch.conf' },
      { src: f, dest: '/etc/link' },
    ]);
    expect(readFileSync(root.dir + '/etc/nsswitch.conf', 'utf8')).toBe('mine');
    expect(root.entries.get('/etc/nsswitch.conf')!.origin).toBe('file:/etc/nsswitch.conf');
    expect(lstatSync(root.dir + '/etc/link').isFile()).toBe(true);
    await expectError(addFileInputs(root, [{ src: f, dest: '/usr/bin' }]), 'input', /a directory is there/);
  });
});

test('replacing the first name of a hardlink group keeps the other names whole', async () => {
  const root = await freshRoot();
  mkdirSync(root.dir + '/etc');
  writeFileSync(root.dir + '/usr/bin/a', 'old');
  linkSync(root.dir + '/usr/bin/a', root.dir + '/usr/bin/b');
  linkSync(root.dir + '/usr/bin/a', root.dir + '/usr/bin/c');
  const sha = createHash('sha256').update('old').digest('hex');
  root.entries.set('/usr/bin/a', {
    path: '/usr/bin/a',
    type: 'file',
    mode: 0o755,
    uid: 0,
    gid: 0,
    size: 3,
    origin: 'pkg:p',
    sha256: sha,
    hostPath: root.dir + '/usr/bin/a',
  });
  for (const n of ['b', 'c'])
    root.entries.set(`/usr/bin/${n}`, {
      path: `/usr/bin/${n}`,
      type: 'hardlink',
      mode: 0o755,
      uid: 0,
      gid: 0,
      size: 0,
      origin: 'pkg:p',
      linkTarget: '/usr/bin/a',
      sha256: sha,
    });
  const f = join(work, 'newa');
  writeFileSync(f, 'new');
  await addFileInputs(root, [{ src: f, dest: '/usr/bin/a' }]);
  expect(root.entries.get('/usr/bin/a')).toMatchObject({ type: 'file', size: 3, origin: 'file:/usr/bin/a' });
  expect(root.entries.get('/usr/bin/b')).toMatchObject({
    type: 'file',
    size: 3,
    sha256: sha,
    hostPath: root.dir + '/usr/bin/b',
  });
  expect(root.entries.get('/usr/bin/b')!.linkTarget).toBeUndefined();
  expect(root.entries.get('/usr/bin/c')).toMatchObject({ type: 'hardlink', linkTarget: '/usr/bin/b' });
  expect(readFileSync(root.dir + '/usr/bin/b', 'utf8')).toBe('old');
  expect(readFileSync(root.dir + '/usr/bin/a', 'utf8')).toBe('new');
});

describe('inputDigest', () => {
  test('a file: sha256 of its bytes; a tree: sha256 of canonical JSON rows', async () => {
    const d = join(work, 'dg');
    mkdirSync(join(d, 'b'), { recursive: true });
    writeFileSync(join(d, 'b', 'x'), 'x');
    writeFileSync(join(d, 'a.sh'), 'a');
    chmodSync(join(d, 'a.sh'), 0o755);
    symlinkSync('b/x', join(d, 'l'));
    const hx = createHash('sha256').update('x').digest('hex');
    const ha = createHash('sha256').update('a').digest('hex');
    expect(await inputDigest(join(d, 'b', 'x'))).toBe(hx);
    const rows = [
      ['a.sh', 'file', true, ha],
      ['b', 'dir', false, ''],
      ['b/x', 'file', false, hx],
      ['l', 'symlink', false, 'b/x'],
    ];
    expect(await treeRows(d)).toEqual(rows);
    expect(await inputDigest(d)).toBe(createHash('sha256').update(canonicalJson(rows)).digest('hex'));
  });

  test('changes with content, exec bit and link targets; not with mtimes', async () => {
    const d = join(work, 'dg2');
    mkdirSync(d);
    writeFileSync(join(d, 'f'), 'one');
    symlinkSync('f', join(d, 'l'));
    const seen = new Set<string>();
    const d0 = await inputDigest(d);
    seen.add(d0);
    utimesSync(join(d, 'f'), 12345, 12345);
    expect(await inputDigest(d)).toBe(d0);
    chmodSync(join(d, 'f'), 0o600);
    expect(await inputDigest(d)).toBe(d0);
    chmodSync(join(d, 'f'), 0o700);
    seen.add(await inputDigest(d));
    writeFileSync(join(d, 'f'), 'two');
    seen.add(await inputDigest(d));
    rmSync(join(d, 'l'));
    symlinkSync('g', join(d, 'l'));
    seen.add(await inputDigest(d));
    expect(seen.size).toBe(4);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lstatSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  planAccounts,
  renderGroup,
  renderPasswd,
  renderShadow,
  validateUser,
  writeAccounts,
} from '../../src/system/accounts.js';
import { MkimgError } from '../../src/util/errors.js';
import { aptDownload, run, stagedRoot, testManifest, type TestRoot } from '../helpers/system.js';

const nonroot = { name: 'nonroot', uid: 65532, gid: 65532, home: '/home/nonroot', shell: '/usr/sbin/nologin' };

describe('planAccounts (pure)', () => {
  it('always has root and nobody, adds manifest users with their own group, sorted by id', () => {
    const m = testManifest({
      accounts: {
        groups: [{ name: 'app', gid: 1000, members: ['nonroot'] }],
        users: [nonroot, { name: 'svc', uid: 999, gid: 1000, home: '/srv', shell: '/bin/sh', gecos: 'Service' }],
      },
    });
    const plan = planAccounts(m, { hasShell: false });
    expect(renderPasswd(plan)).toBe(
      'root:x:0:0:root:/root:/usr/sbin/nologin\n' +
        'svc:x:999:1000:Service:/srv:/bin/sh\n' +
        'nonroot:x:65532:65532::/home/nonroot:/usr/sbin/nologin\n' +
        'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n',
    );
    expect(renderGroup(plan)).toBe('root:x:0:\napp:x:1000:nonroot\nnonroot:x:65532:\nnogroup:x:65534:\n');
    const day = Math.floor(1700000000 / 86400);
    expect(renderShadow(plan, 1700000000)).toBe(
      `root:*:${day}:0:99999:7:::\nsvc:!:${day}:0:99999:7:::\nnonroot:!:${day}:0:99999:7:::\nnobody:*:${day}:0:99999:7:::\n`,
    );
  });

  it('gives root /bin/sh only when the image has one', () => {
    expect(renderPasswd(planAccounts(testManifest(), { hasShell: true }))).toContain('root:x:0:0:root:/root:/bin/sh\n');
  });

  it('merges base files: package entries first, manifest entries override by name', () => {
    const plan = planAccounts(
      testManifest({
        accounts: { groups: [], users: [{ name: 'www-data', uid: 33, gid: 33, home: '/var/www', shell: '/bin/sh' }] },
      }),
      {
        basePasswd: 'root:*:0:0:root:/root:/bin/bash\nwww-data:*:33:33:www-data:/var/www:/usr/sbin/nologin\n',
        baseGroup: 'root:*:0:\nwww-data:*:33:\nshadow:*:42:\n',
        hasShell: true,
        exists: (p) => p === '/bin/sh',
      },
    );
    const passwd = renderPasswd(plan);
    // /bin/bash is not in the image: root gets the shell that is.
    expect(passwd).toContain('root:x:0:0:root:/root:/bin/sh\n');
    expect(passwd).toContain('www-data:x:33:33::/var/www:/bin/sh\n');
    expect(renderGroup(plan)).toContain('shadow:x:42:\n');
  });

  it('refuses group members that are not users, and duplicate uids', () => {
    expect(() =>
      planAccounts(testManifest({ accounts: { groups: [{ name: 'g', gid: 5, members: ['ghost'] }], users: [] } }), {
        hasShell: false,
      }),
    ).toThrow(/accounts\.groups\[0\]\.members names user "ghost"/);
    expect(() =>
      planAccounts(testManifest({ accounts: { groups: [], users: [nonroot, { ...nonroot, name: 'other' }] } }), {
        hasShell: false,
      }),
    ).toThrow(/share uid 65532/);
  });
});

describe('validateUser', () => {
  const withUser = (user: string, users = [nonroot]) =>
    testManifest({ accounts: { groups: [], users }, config: { env: {}, labels: {}, exposedPorts: [], user } });
  it('accepts known names and numeric ids', () => {
    for (const u of ['nonroot', 'nonroot:nonroot', '65532:65532', '1234', 'root:0', 'nobody:nogroup'])
      expect(() => validateUser(withUser(u))).not.toThrow();
  });
  it('rejects an unknown user or group with a manifest error naming config.user', () => {
    let err: unknown;
    try {
      validateUser(withUser('ghost'));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MkimgError);
    expect((err as MkimgError).kind).toBe('manifest');
    expect((err as MkimgError).exitCode).toBe(3);
    expect((err as MkimgError).message).toMatch(/^config\.user names user "ghost"/);
    expect(() => validateUser(withUser('nonroot:ghosts'))).toThrow(/config\.user names group "ghosts"/);
    expect(() => validateUser(withUser('a:b:c'))).toThrow(/config\.user/);
  });
  it('knows base-passwd names when base-passwd is requested', () => {
    const m = withUser('www-data', []);
    expect(() => validateUser(m)).toThrow(/www-data/);
    m.packages = [{ kind: 'name', name: 'base-passwd' }];
    expect(() => validateUser(m)).not.toThrow();
  });
});

describe('writeAccounts on a real root (libc6, libc-bin, dash, base-passwd)', () => {
  let t: TestRoot | undefined;
  let skip = '';
  beforeAll(async () => {
    const dl = aptDownload(['libc6', 'libc-bin', 'dash', 'base-passwd']);
    if (!dl.debs) {
      skip = dl.reason!;
      return;
    }
    t = await stagedRoot(dl.debs);
  });
  afterAll(() => t?.cleanup());

  it('writes files getent parses inside the root, with the right owners and modes', (ctx) => {
    if (!t) {
      console.warn(`skipped: ${skip}`);
      ctx.skip();
      return;
    }
    const { root } = t;
    const m = testManifest({
      accounts: { groups: [{ name: 'app', gid: 1000, members: ['nonroot'] }], users: [nonroot] },
      config: { env: {}, labels: {}, exposedPorts: [], user: 'nonroot' },
    });
    const written = writeAccounts(root, m);
    expect(written).toEqual(
      expect.arrayContaining(['/etc/passwd', '/etc/group', '/etc/shadow', '/home', '/home/nonroot']),
    );

    const getent = (...args: string[]) => run('chroot', [root.dir, '/usr/bin/getent', ...args]).trim();
    expect(getent('passwd', 'nonroot')).toBe('nonroot:x:65532:65532::/home/nonroot:/usr/sbin/nologin');
    expect(getent('passwd', '65532')).toBe('nonroot:x:65532:65532::/home/nonroot:/usr/sbin/nologin');
    expect(getent('group', 'app')).toBe('app:x:1000:nonroot');
    expect(getent('group', 'nonroot')).toBe('nonroot:x:65532:');
    // base-passwd's entries were merged; dash provides /bin/sh, bash is absent
    expect(getent('passwd', 'root')).toBe('root:x:0:0:root:/root:/bin/sh');
    expect(getent('passwd', 'www-data')).toBe('www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin');
    expect(getent('passwd', 'nobody')).toBe('nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin');
    expect(getent('shadow', 'nonroot')).toBe(`nonroot:!:${Math.floor(m.sourceDateEpoch / 86400)}:0:99999:7:::`);

    const shadow = root.entries.get('/etc/shadow')!;
    expect({ mode: shadow.mode, uid: shadow.uid, gid: shadow.gid }).toEqual({ mode: 0o640, uid: 0, gid: 42 });
    expect(root.entries.get('/etc/passwd')).toMatchObject({
      type: 'file',
      mode: 0o644,
      uid: 0,
      gid: 0,
      origin: 'generated:accounts',
    });
    expect(root.entries.get('/home/nonroot')).toMatchObject({ type: 'dir', mode: 0o700, uid: 65532, gid: 65532 });
    expect(root.entries.get('/root')).toMatchObject({ type: 'dir', mode: 0o700, uid: 0, gid: 0 });
    expect(lstatSync(join(root.dir, 'home/nonroot')).isDirectory()).toBe(true);
    // the index's size/sha match the host bytes
    const bytes = readFileSync(join(root.dir, 'etc/passwd'));
    expect(root.entries.get('/etc/passwd')!.size).toBe(bytes.length);

    // running twice gives the same bytes (idempotent over its own output)
    writeAccounts(root, m);
    expect(readFileSync(join(root.dir, 'etc/passwd'))).toEqual(bytes);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { debianBase } from '../../src/debian/describe.js';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DEFAULT_NSSWITCH,
  generatedOsRelease,
  generatedDebianVersion,
  writeOsRelease,
  pemLinkName,
  planCaBundle,
  writeCaCertificates,
  writeSystemFiles,
  writeTimezone,
} from '../../src/system/files.js';
import { readRootFile, resolveInRoot, writeRootFile } from '../../src/system/rootfs.js';
import { createStagingRoot } from '../../src/stage/root.js';
import {
  aptDownload,
  run,
  stagedRoot,
  testManifest,
  type DebFile,
  type TestRoot,
  skipUnless,
} from '../helpers/system.js';

let debs: DebFile[] | undefined;
let skip = '';
beforeAll(() => {
  const dl = aptDownload(['ca-certificates', 'tzdata', 'base-files', 'libc-bin']);
  debs = dl.debs;
  skip = dl.reason ?? '';
});
const need = skipUnless(
  () => debs !== undefined,
  () => skip,
);
const pick = (...names: string[]): DebFile[] => debs!.filter((d) => names.includes(d.name));

/**
 * Run the package's own update-ca-certificates (from the same .deb, as
 * unpacked in the root) against the root's certificate directories, writing
 * into a scratch /etc/ssl/certs. Returns the bundle and the .pem link names.
 */
function referenceBundle(
  rootDir: string,
  conf: string | undefined,
  localDir?: string,
): { bundle: Buffer; pems: Map<string, string>; hashes: Map<string, string> } {
  const scratch = mkdtempSync(join(tmpdir(), 'mkimg-ucc-'));
  try {
    const etc = join(scratch, 'certs');
    mkdirSync(etc);
    const confPath = join(scratch, 'ca-certificates.conf');
    writeFileSync(confPath, conf ?? '');
    const args = [
      join(rootDir, 'usr/sbin/update-ca-certificates'),
      ...(conf === undefined ? ['--default'] : []),
      '--certsconf',
      confPath,
      '--certsdir',
      join(rootDir, 'usr/share/ca-certificates'),
      '--localcertsdir',
      localDir ?? join(scratch, 'no-local'),
      '--etccertsdir',
      etc,
      '--hooksdir',
      join(scratch, 'no-hooks'),
    ];
    run('sh', args, { env: { ...process.env, LC_ALL: 'C', TMPDIR: scratch } });
    const pems = new Map<string, string>();
    const hashes = new Map<string, string>();
    for (const f of readdirSync(etc)) {
      if (f.endsWith('.pem')) pems.set(f, readlinkSync(join(etc, f)));
      else if (/^[0-9a-f]{8}\.[0-9]+$/.test(f)) hashes.set(f, readlinkSync(join(etc, f)));
    }
    return { bundle: readFileSync(join(etc, 'ca-certificates.crt')), pems, hashes };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

describe('CA bundle', () => {
  let t: TestRoot | undefined;
  afterAll(() => t?.cleanup());

  it('equals update-ca-certificates output for a fresh install (no conf: every certificate)', async (ctx) => {
    if (!need(ctx)) return;
    t = await stagedRoot(pick('ca-certificates'));
    const { root } = t;
    expect(root.entries.has('/etc/ca-certificates.conf')).toBe(false);
    const plan = planCaBundle(root)!;
    expect(plan.from).toBe('all');
    expect(plan.certs.length).toBeGreaterThan(100);

    const kept = writeCaCertificates(root);
    // every link written is returned with what it points at: keeping them leaves nothing dangling
    for (const p of kept.filter((k) => root.entries.get(k)?.type === 'symlink'))
      expect(kept, p).toContain(resolveInRoot(root, p));
    const ours = readFileSync(join(root.dir, 'etc/ssl/certs/ca-certificates.crt'));
    const ref = referenceBundle(root.dir, undefined);
    expect(ours.length).toBe(ref.bundle.length);
    expect(ours.equals(ref.bundle)).toBe(true);
    expect(root.entries.get('/etc/ssl/certs/ca-certificates.crt')).toMatchObject({
      type: 'file',
      mode: 0o644,
      size: ours.length,
      origin: 'generated:ca-certificates',
    });

    // the same .pem links, pointing at the same certificates (inside the image)
    const ourPems = [...root.entries.values()].filter(
      (e) => e.path.startsWith('/etc/ssl/certs/') && e.path.endsWith('.pem'),
    );
    expect(ourPems.map((e) => e.path.slice('/etc/ssl/certs/'.length)).sort()).toEqual([...ref.pems.keys()].sort());
    for (const e of ourPems) {
      const name = e.path.slice('/etc/ssl/certs/'.length);
      expect(e.linkTarget).toBe(ref.pems.get(name)!.slice(root.dir.length));
      expect(readlinkSync(join(root.dir, e.path))).toBe(e.linkTarget);
    }
    // the same OpenSSL subject-hash links (openssl rehash) to the same .pem names
    const ourHashes = new Map(
      [...root.entries.values()]
        .filter((e) => /^\/etc\/ssl\/certs\/[0-9a-f]{8}\.[0-9]+$/.test(e.path))
        .map((e) => [e.path.slice('/etc/ssl/certs/'.length), e.linkTarget]),
    );
    expect(ref.hashes.size).toBeGreaterThan(100);
    expect(ourHashes).toEqual(ref.hashes);
    // and the bundle parses as the same certificates openssl sees
    const count = run('sh', [
      '-c',
      `grep -c 'BEGIN CERTIFICATE' ${join(root.dir, 'etc/ssl/certs/ca-certificates.crt')}`,
    ]).trim();
    expect(Number(count)).toBe(plan.certs.length);
  });

  it('follows /etc/ca-certificates.conf order and deselections, then local certificates', async (ctx) => {
    if (!need(ctx)) return;
    const t2 = await stagedRoot(pick('ca-certificates'));
    try {
      const { root } = t2;
      const all = planCaBundle(root)!.certs.map((c) => c.slice('/usr/share/ca-certificates/'.length));
      // a conf as the postinst writes it, but edited: reversed order, two deselected, one missing
      const chosen = all.slice(0, 12).reverse();
      const conf = ['# comment', '', `!${all[20]}`, ...chosen, `!${all[21]}`, 'mozilla/Not_There.crt', ''].join('\n');
      writeRootFile(root, '/etc/ca-certificates.conf', conf, 'test');
      // a local certificate without a trailing newline (update-ca-certificates adds one)
      const cert = readFileSync(join(root.dir, 'usr/share/ca-certificates', all[5]))
        .toString('utf8')
        .replace(/\n+$/, '');
      writeRootFile(root, '/usr/local/share/ca-certificates/corp/My Corp (Root), CA.crt', cert, 'test');

      const plan = planCaBundle(root)!;
      expect(plan.from).toBe('conf');
      expect(plan.missing).toEqual(['mozilla/Not_There.crt']);
      writeCaCertificates(root);
      const ours = readFileSync(join(root.dir, 'etc/ssl/certs/ca-certificates.crt'));
      const ref = referenceBundle(root.dir, conf, join(root.dir, 'usr/local/share/ca-certificates'));
      expect(ours.equals(ref.bundle)).toBe(true);
      expect(plan.certs.length).toBe(13);
      expect(pemLinkName('/x/My Corp (Root), CA.crt')).toBe('My_Corp_=Root=__CA.pem');
      expect(ref.pems.has('My_Corp_=Root=__CA.pem')).toBe(true);
      expect(root.entries.get('/etc/ssl/certs/My_Corp_=Root=__CA.pem')?.linkTarget).toBe(
        '/usr/local/share/ca-certificates/corp/My Corp (Root), CA.crt',
      );
      // the local certificate is a copy of a selected one: same hash, same fingerprint, one link only (rehash skips duplicates)
      const ourHashes = new Map(
        [...root.entries.values()]
          .filter((e) => /^\/etc\/ssl\/certs\/[0-9a-f]{8}\.[0-9]+$/.test(e.path))
          .map((e) => [e.path.slice('/etc/ssl/certs/'.length), e.linkTarget]),
      );
      expect(ourHashes).toEqual(ref.hashes);
      expect(ourHashes.size).toBe(12);
    } finally {
      t2.cleanup();
    }
  });

  it('writes nothing without certificates', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mkimg-empty-'));
    try {
      const root = await createStagingRoot(join(dir, 'root'));
      expect(writeCaCertificates(root)).toEqual([]);
      expect(root.entries.has('/etc/ssl/certs/ca-certificates.crt')).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('os-release, nsswitch, /tmp, time zones', () => {
  it('uses base-files os-release through the Debian symlink', async (ctx) => {
    if (!need(ctx)) return;
    const t = await stagedRoot(pick('base-files', 'libc-bin'));
    try {
      const { root } = t;
      const written = writeSystemFiles(root, testManifest());
      expect(root.entries.get('/etc/os-release')).toMatchObject({
        type: 'symlink',
        linkTarget: '../usr/lib/os-release',
        origin: 'pkg:base-files',
      });
      const text = readRootFile(root, '/etc/os-release')!.toString('utf8');
      expect(text).toMatch(/^ID=debian$/m);
      expect(text).toMatch(/^VERSION_ID="12"$/m);
      // base-files' own os-release is not rewritten, but it is returned so the minimizer keeps it
      expect(root.entries.get('/usr/lib/os-release')!.origin).toBe('pkg:base-files');
      expect(written).toEqual(
        expect.arrayContaining(['/etc/os-release', '/usr/lib/os-release', '/etc/debian_version']),
      );
      // libc-bin's template, as its postinst installs it
      expect(readRootFile(root, '/etc/nsswitch.conf')!.toString('utf8')).toBe(
        readRootFile(root, '/usr/share/libc-bin/nsswitch.conf')!.toString('utf8'),
      );
      expect(root.entries.get('/tmp')).toMatchObject({ type: 'dir', mode: 0o1777, uid: 0, gid: 0 });
      expect(written).toEqual(expect.arrayContaining(['/etc/nsswitch.conf', '/tmp']));
    } finally {
      t.cleanup();
    }
  });

  it('generates an honest os-release and nsswitch.conf without packages', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mkimg-empty-'));
    try {
      const root = await createStagingRoot(join(dir, 'root'));
      const m = testManifest();
      writeSystemFiles(root, m);
      expect(root.entries.get('/etc/os-release')).toMatchObject({
        type: 'symlink',
        linkTarget: '../usr/lib/os-release',
      });
      expect(readRootFile(root, '/etc/os-release')!.toString('utf8')).toBe(
        'PRETTY_NAME="mkimg image (Debian 12 packages)"\nNAME="mkimg image"\nID=debian\nVERSION_ID="12"\nVERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\n',
      );
      // Trivy identifies a Debian base by /etc/debian_version alone: written from the suite, kept
      expect(readRootFile(root, '/etc/debian_version')!.toString('utf8')).toBe('12\n');
      expect(root.entries.get('/etc/debian_version')).toMatchObject({
        type: 'file',
        mode: 0o644,
        uid: 0,
        gid: 0,
        origin: 'generated:os-release',
      });
      expect(writeOsRelease(root, m)).toContain('/etc/debian_version');
      // the image's own URLs come from its OCI labels, quoted as os-release(5) asks
      const labelled = testManifest({
        config: {
          ...m.config,
          labels: {
            'org.opencontainers.image.source': 'https://git.example.invalid/app',
            'org.opencontainers.image.documentation': 'https://docs.example.invalid/a"b',
          },
        },
      });
      expect(generatedOsRelease(labelled)).toMatch(
        /\nHOME_URL="https:\/\/git\.example\.invalid\/app"\nSUPPORT_URL="https:\/\/docs\.example\.invalid\/a\\"b"\n$/,
      );
      expect(
        generatedDebianVersion(
          testManifest({ sources: [{ suites: ['sid'], components: ['main'], allowUnsigned: false }] }),
        ),
      ).toBe('sid\n');
      expect(readRootFile(root, '/etc/nsswitch.conf')!.toString('utf8')).toBe(DEFAULT_NSSWITCH);
      expect(root.entries.get('/tmp')).toMatchObject({ type: 'dir', mode: 0o1777 });
      // not from Debian: no Debian claim
      const other = testManifest({
        sources: [{ url: 'http://127.0.0.1/x', suites: ['stable-local'], components: ['main'], allowUnsigned: true }],
      });
      expect(debianBase(other)).toBeUndefined();
      expect(generatedOsRelease(other)).toBe('PRETTY_NAME="mkimg image"\nNAME="mkimg image"\nID=mkimg\n');
      expect(generatedDebianVersion(other)).toBeUndefined();
      expect(
        debianBase(testManifest({ sources: [{ suites: ['trixie'], components: ['main'], allowUnsigned: false }] })),
      ).toEqual({ codename: 'trixie', version: '13' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps tzdata as plain files and relative links, adds /etc/localtime -> Etc/UTC', async (ctx) => {
    if (!need(ctx)) return;
    const t = await stagedRoot(pick('tzdata'));
    try {
      const { root } = t;
      const zone = [...root.entries.values()].filter((e) => e.path.startsWith('/usr/share/zoneinfo/'));
      expect(zone.length).toBeGreaterThan(500);
      const types = new Set(zone.map((e) => e.type));
      expect(types.has('hardlink')).toBe(false);
      const before = new Map(zone.map((e) => [e.path, { ...e }]));
      let written: string[] = [];
      // tzdata's zoneinfo/localtime -> /etc/localtime dangles until the postinst's link exists
      expect(root.entries.get(resolveInRoot(root, '/usr/share/zoneinfo/localtime')!)).toBeUndefined();
      written = writeSystemFiles(root, testManifest());
      for (const [p, e] of before) expect(root.entries.get(p)).toEqual(e);
      // now every link resolves, inside the root, to a regular file or a zone directory
      for (const e of zone.filter((z) => z.type === 'symlink')) {
        const target = root.entries.get(resolveInRoot(root, e.path)!);
        expect(['file', 'dir'], e.path).toContain(target?.type);
      }
      expect(root.entries.get('/etc/localtime')).toMatchObject({
        type: 'symlink',
        linkTarget: '/usr/share/zoneinfo/Etc/UTC',
      });
      expect(readRootFile(root, '/etc/localtime')!.subarray(0, 4).toString('latin1')).toBe('TZif');
      expect(readRootFile(root, '/etc/timezone')!.toString('utf8')).toBe('Etc/UTC\n');
      // not forced into the image: kept when traced or by the timezones keep-group
      expect(
        written.filter(
          (p) => p.startsWith('/usr/share/zoneinfo') || p.startsWith('/etc/localtime') || p === '/etc/timezone',
        ),
      ).toEqual([]);
      expect(writeTimezone(root)).toEqual([]); // already there: nothing new written
    } finally {
      t.cleanup();
    }
  });
});

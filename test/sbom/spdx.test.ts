import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { writeAccounts } from '../../src/system/accounts.js';
import { writeSystemFiles } from '../../src/system/files.js';
import { writeRootFile } from '../../src/system/rootfs.js';
import { DPKG_INFO_DIR, statusStanza, STATUSD_DIR, writeStatusD } from '../../src/debian/statusd.js';
import { dpkgInfoName, sourcePackageOf } from '../../src/debian/source-package.js';
import { makeSbom, reserveSbom, SBOM_PATH, sbomBytes, writeSbom } from '../../src/sbom/spdx.js';
import { debPurl, supplierOf } from '../../src/debian/describe.js';
import { canonicalJsonBytes } from '../../src/util/canonical-json.js';
import { debianLicenseOf, spdxLicenseOf } from '../../src/debian/license.js';
import { aptDownload, run, stagedRoot, testManifest, type TestRoot, skipUnless } from '../helpers/system.js';

const schema = JSON.parse(readFileSync(new URL('../data/spdx-schema-2.3.json', import.meta.url), 'utf8'));

describe('licenses from DEP-5 copyright files (pure)', () => {
  const dep5 = (files: string, license: string, extra = '') =>
    `Format: https://dep-team.invalid/doc/packaging-manuals/copyright-format/1.0/\nUpstream-Name: x\n\nFiles: debian/*\nLicense: GPL-2+\n\nFiles: ${files}\nCopyright: someone\nLicense: ${license}\n${extra}`;
  it('takes the first License of the "Files: *" paragraph and maps it to SPDX', () => {
    expect(spdxLicenseOf(dep5('*', 'BSD-3-Clause'), 'p').expression).toBe('BSD-3-Clause');
    expect(spdxLicenseOf(dep5('* src/foo.c', 'GPL-2+ or Artistic'), 'p').expression).toBe(
      'GPL-2.0-or-later OR Artistic-1.0-Perl',
    );
    expect(spdxLicenseOf(dep5('*', 'Expat and LGPL-2.1+'), 'p').expression).toBe('MIT AND LGPL-2.1-or-later');
    expect(debianLicenseOf(dep5('*', 'GPL-3+\n This is free software.'))).toBe('GPL-3+');
  });
  it('turns unknown names into LicenseRefs with the standalone text', () => {
    const r = spdxLicenseOf(
      dep5('*', 'public-domain', '\nLicense: public-domain\n This file is in the public domain.\n'),
      'tz',
    );
    expect(r.expression).toBe('LicenseRef-public-domain');
    expect(r.extracted).toEqual([
      {
        licenseId: 'LicenseRef-public-domain',
        name: 'public-domain',
        extractedText: 'This file is in the public domain.',
      },
    ]);
    expect(spdxLicenseOf(dep5('*', 'GPL-3+ with GCC-exception'), 'p').expression).toBe(
      'LicenseRef-GPL-3-with-GCC-exception',
    );
  });
  it('says NOASSERTION when there is no machine-readable answer', () => {
    expect(spdxLicenseOf('This is Debian prepackaged version of foo.\nGPL.\n', 'p').expression).toBe('NOASSERTION');
    expect(spdxLicenseOf(dep5('src/*', 'MIT'), 'p').expression).toBe('NOASSERTION');
    expect(spdxLicenseOf(undefined, 'p').expression).toBe('NOASSERTION');
  });
  it('formats purls and suppliers', () => {
    expect(debPurl('libstdc++6', '1:12.2.0-14', 'amd64', 'debian-12')).toBe(
      'pkg:deb/debian/libstdc%2B%2B6@1%3A12.2.0-14?arch=amd64&distro=debian-12',
    );
    expect(supplierOf('Julien Cristau <jcristau@example.org>')).toBe('Person: Julien Cristau (jcristau@example.org)');
    expect(supplierOf('GNU Libc Maintainers <debian-glibc@lists.example.org>')).toBe(
      'Organization: GNU Libc Maintainers (debian-glibc@lists.example.org)',
    );
  });
});

describe('status.d and SBOM on a real minimized root', () => {
  let t: TestRoot | undefined;
  let skip = '';
  let keep = new Set<string>();
  const m = testManifest({
    accounts: {
      groups: [],
      users: [{ name: 'nonroot', uid: 65532, gid: 65532, home: '/home/nonroot', shell: '/usr/sbin/nologin' }],
    },
  });

  beforeAll(async () => {
    const dl = aptDownload(['base-files', 'base-passwd', 'dash', 'tzdata', 'ca-certificates']);
    if (!dl.debs) {
      skip = dl.reason!;
      return;
    }
    t = await stagedRoot(dl.debs);
    const { root } = t;
    writeRootFile(root, '/etc/app/app.conf', 'port = 8080\n', 'file:app.conf');
    // what mkimg generated, as a minimizer keeps it (the CA bundle because a check read it)
    const generated = [
      ...writeAccounts(root, m),
      ...writeSystemFiles(root, m),
      '/etc/ssl/certs/ca-certificates.crt',
    ].filter((p) => !root.entries.get(p)?.origin.startsWith('pkg:'));
    // A "minimized" keep set: all of base-files, dash and tzdata's files; three
    // certificates of ca-certificates; nothing of base-passwd (minimized away).
    const byPkg = (name: string) => root.packages.find((p) => p.name === name)!.paths;
    const certs = byPkg('ca-certificates')
      .filter((p) => p.endsWith('.crt'))
      .slice(0, 3);
    keep = new Set([
      ...byPkg('base-files'),
      ...byPkg('dash'),
      ...byPkg('tzdata'),
      ...certs,
      ...generated,
      '/etc/app/app.conf',
    ]);
  });
  afterAll(() => t?.cleanup());

  const need = skipUnless(
    () => t !== undefined,
    () => skip,
  );

  it('status.d lists exactly the contributing packages, parses with dpkg-query, md5sums check', (ctx) => {
    if (!need(ctx)) return;
    const { root } = t!;
    const paths = writeStatusD(root, keep);
    for (const p of paths) keep.add(p);
    // status.d holds only control stanzas (a scanner parses each file there as one);
    // md5sums go where dpkg keeps them
    const files = readdirSync(join(root.dir, STATUSD_DIR)).sort();
    expect(files).toEqual(['base-files', 'ca-certificates', 'dash', 'tzdata']);
    const info = join(root.dir, DPKG_INFO_DIR);
    expect(readdirSync(info).sort()).toEqual([
      'base-files.md5sums',
      'ca-certificates.md5sums',
      'dash.md5sums',
      'tzdata.md5sums',
    ]);
    expect(paths).toEqual(
      expect.arrayContaining([
        '/var',
        '/var/lib',
        '/var/lib/dpkg',
        STATUSD_DIR,
        `${STATUSD_DIR}/dash`,
        DPKG_INFO_DIR,
        `${DPKG_INFO_DIR}/dash.md5sums`,
      ]),
    );
    // every listed package keeps its copyright file (license scanners read it), even though
    // the "minimized" keep set dropped ca-certificates' docs; base-passwd (not listed) keeps none
    for (const n of ['base-files', 'ca-certificates', 'dash', 'tzdata'])
      expect(paths, n).toContain(`/usr/share/doc/${n}/copyright`);
    expect(paths.some((p) => p.startsWith('/usr/share/doc/base-passwd'))).toBe(false);
    expect(readFileSync(join(info, 'ca-certificates.md5sums'), 'utf8')).toMatch(
      /  usr\/share\/doc\/ca-certificates\/copyright\n/,
    );
    expect(root.entries.get(`${STATUSD_DIR}/dash`)).toMatchObject({
      type: 'file',
      mode: 0o644,
      uid: 0,
      gid: 0,
      origin: 'generated:status.d',
    });

    // dpkg itself parses them as a status database
    const admin = mkdtempSync(join(tmpdir(), 'mkimg-admin-'));
    try {
      const stanzas = files.map((f) => readFileSync(join(root.dir, STATUSD_DIR, f), 'utf8'));
      writeFileSync(join(admin, 'status'), stanzas.join('\n'));
      mkdirSync(join(admin, 'info'));
      writeFileSync(join(admin, 'available'), '');
      const out = run('dpkg-query', [`--admindir=${admin}`, '-W', '-f=${Package} ${Version} ${Status}\\n']);
      const expected = ['base-files', 'ca-certificates', 'dash', 'tzdata'].map((n) => {
        const p = root.packages.find((x) => x.name === n)!;
        return `${n} ${p.version} install ok installed`;
      });
      expect(out.trim().split('\n').sort()).toEqual(expected);
    } finally {
      rmSync(admin, { recursive: true, force: true });
    }

    // md5sums: only kept files, and they verify against the root's bytes
    const caSums = readFileSync(join(info, 'ca-certificates.md5sums'), 'utf8').trim().split('\n');
    expect(caSums).toHaveLength(4); // three certificates and the copyright file
    const check = run('md5sum', ['-c', '--quiet', join(info, 'dash.md5sums')], { cwd: root.dir });
    expect(check).toBe('');
    run('md5sum', ['-c', '--quiet', join(info, 'ca-certificates.md5sums')], { cwd: root.dir });
    const dashSums = readFileSync(join(info, 'dash.md5sums'), 'utf8');
    expect(dashSums).toBe(root.packages.find((p) => p.name === 'dash')!.md5sums);
  });

  it('purls name the source package (upstream=) when it differs; info files are name:arch for Multi-Arch: same', () => {
    const libc6 = 'Package: libc6\nSource: glibc\nVersion: 2.36-9+deb12u14\nArchitecture: amd64\nMulti-Arch: same\n';
    expect(sourcePackageOf(libc6, 'libc6')).toEqual({ name: 'glibc' });
    expect(debPurl('libc6', '2.36-9+deb12u14', 'amd64', 'debian-12', sourcePackageOf(libc6, 'libc6'))).toBe(
      'pkg:deb/debian/libc6@2.36-9%2Bdeb12u14?arch=amd64&distro=debian-12&upstream=glibc',
    );
    // a binNMU names the source version too; a package that is its own source gets no qualifier
    const bin = 'Package: libbz2-1.0\nSource: bzip2 (1.0.8-5)\nVersion: 1.0.8-5+b1\n';
    expect(debPurl('libbz2-1.0', '1.0.8-5+b1', 'amd64', 'debian-12', sourcePackageOf(bin, 'libbz2-1.0'))).toBe(
      'pkg:deb/debian/libbz2-1.0@1.0.8-5%2Bb1?arch=amd64&distro=debian-12&upstream=bzip2%401.0.8-5',
    );
    expect(
      debPurl('dash', '0.5.12-2', 'amd64', 'debian-12', sourcePackageOf('Package: dash\nVersion: 0.5.12-2\n', 'dash')),
    ).toBe('pkg:deb/debian/dash@0.5.12-2?arch=amd64&distro=debian-12');
    expect(dpkgInfoName(libc6, 'libc6', 'amd64')).toBe('libc6:amd64');
    expect(dpkgInfoName('Package: dash\nMulti-Arch: foreign\n', 'dash', 'amd64')).toBe('dash');
  });

  it('the stanza is the control file plus the Status line', () => {
    expect(statusStanza('Package: a\nVersion: 1\nDescription: x\n more\n\n')).toBe(
      'Package: a\nStatus: install ok installed\nVersion: 1\nDescription: x\n more\n',
    );
  });

  it('the SBOM validates against SPDX 2.3, lists the status.d packages, and every kept file', (ctx) => {
    if (!need(ctx)) return;
    const { root } = t!;
    const ajv = new Ajv({ allErrors: true, strict: false });
    const validate = ajv.compile(schema);
    const doc = makeSbom(root, keep, m) as any;
    const ok = validate(doc);
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
    // the validator bites: a package without SPDXID, a bad date
    const broken = JSON.parse(JSON.stringify(doc));
    delete broken.packages[1].SPDXID;
    broken.creationInfo.created = '2023-11-14 22:13';
    expect(validate(broken)).toBe(false);

    expect(doc.spdxVersion).toBe('SPDX-2.3');
    expect(doc.creationInfo.created).toBe('2023-11-14T22:13:20Z');
    expect(doc.documentNamespace).toBe(`https://mkimg.invalid/spdx/test-${m.origin.sha256}`);

    const debs = doc.packages.filter((p: any) => (p.externalRefs ?? []).some((r: any) => r.referenceType === 'purl'));
    const statusd = readdirSync(join(root.dir, STATUSD_DIR))
      .filter((f) => !f.endsWith('.md5sums'))
      .sort();
    expect(debs.map((p: any) => p.name).sort()).toEqual(statusd);
    const pkgOf = (n: string) => debs.find((p: any) => p.name === n);
    const dash = root.packages.find((p) => p.name === 'dash')!;
    expect(pkgOf('dash').versionInfo).toBe(dash.version);
    expect(pkgOf('dash').checksums).toEqual([{ algorithm: 'SHA256', checksumValue: dash.sha256 }]);
    expect(pkgOf('dash').externalRefs[0].referenceLocator).toBe(debPurl('dash', dash.version, 'amd64', 'debian-12'));
    expect(pkgOf('dash').licenseDeclared).toBe('BSD-3-Clause');
    expect(pkgOf('tzdata').licenseDeclared).toBe('LicenseRef-public-domain');
    expect(pkgOf('base-files').licenseDeclared).toBe('NOASSERTION');
    expect(doc.hasExtractedLicensingInfos.map((x: any) => x.licenseId)).toContain('LicenseRef-public-domain');

    // files: every kept regular file (not directories or links), with its true sha256 and owner
    const keptFiles = [...keep].filter((p) => ['file', 'hardlink'].includes(root.entries.get(p)?.type ?? '')).sort();
    expect(doc.files.map((f: any) => f.fileName).sort()).toEqual(keptFiles);
    const byName = new Map(doc.files.map((f: any) => [f.fileName, f]));
    const sh = byName.get('/usr/bin/dash') as any;
    const actual = createHash('sha256')
      .update(readFileSync(join(root.dir, 'usr/bin/dash')))
      .digest('hex');
    expect(sh.checksums.find((c: any) => c.algorithm === 'SHA256').checksumValue).toBe(actual);
    const contains = (from: string, to: string) =>
      doc.relationships.some(
        (r: any) => r.spdxElementId === from && r.relationshipType === 'CONTAINS' && r.relatedSpdxElement === to,
      );
    expect(contains(pkgOf('dash').SPDXID, sh.SPDXID)).toBe(true);
    const input = byName.get('/etc/app/app.conf') as any;
    expect(input.comment).toBe('from files: input app.conf');
    expect(contains('SPDXRef-Package-mkimg-inputs', input.SPDXID)).toBe(true);
    expect(contains('SPDXRef-Package-mkimg-generated', (byName.get('/etc/passwd') as any).SPDXID)).toBe(true);
    // the copyright file kept for license scanners is named in the SBOM, in its package
    const caCopyright = byName.get('/usr/share/doc/ca-certificates/copyright') as any;
    expect(contains(pkgOf('ca-certificates').SPDXID, caCopyright.SPDXID)).toBe(true);
    // base-passwd was minimized away: not in the SBOM
    expect(doc.packages.some((p: any) => p.name === 'base-passwd')).toBe(false);
  });

  it('is deterministic and stored in the image root', (ctx) => {
    if (!need(ctx)) return;
    const { root } = t!;
    const a = sbomBytes(root, keep, m);
    const b = sbomBytes(root, keep, m);
    expect(a.equals(b)).toBe(true);
    // serialized once, the bytes are those of the JSON round-tripped document
    expect(a.equals(canonicalJsonBytes(makeSbom(root, keep, m)))).toBe(true);
    const w = writeSbom(root, keep, m);
    expect(w.bytes.equals(a)).toBe(true);
    expect(w.paths).toEqual(expect.arrayContaining(['/usr/share/mkimg', SBOM_PATH]));
    expect(readFileSync(join(root.dir, SBOM_PATH)).equals(a)).toBe(true);
    // the SBOM does not list itself, so writing it changes nothing
    for (const p of w.paths) keep.add(p);
    expect(sbomBytes(root, keep, m).equals(a)).toBe(true);
    // a different deb sha map changes the package checksum
    const other = makeSbom(root, keep, m, { dash: 'ab'.repeat(32) }) as any;
    expect(other.packages.find((p: any) => p.name === 'dash').checksums[0].checksumValue).toBe('ab'.repeat(32));
  });

  it('reserved with some files unhashed: the final size from the start, the same bytes once their digests are in', (ctx) => {
    if (!need(ctx)) return;
    const { root } = t!;
    const want = sbomBytes(root, keep, m);
    // Forget the digests of a third of the files, as for inputs read in place before the layer is written.
    const files = [...keep]
      .map((p) => root.entries.get(p)!)
      .filter((e) => e?.type === 'file' && e.path !== SBOM_PATH && e.sha1 && e.sha256);
    const forgotten = files.filter((_, i) => i % 3 === 0).map((e) => ({ e, sha1: e.sha1!, sha256: e.sha256! }));
    expect(forgotten.length).toBeGreaterThan(3);
    for (const f of forgotten) {
      delete f.e.sha1;
      delete f.e.sha256;
    }
    const unhashed = new Set(forgotten.map((f) => f.e));
    const reserved = reserveSbom(root, keep, m, undefined, (e) => unhashed.has(e));
    expect(root.entries.get(SBOM_PATH)!.size).toBe(want.length);
    expect(() => reserved.bytes()).toThrow(/was not hashed before the SBOM was written/);
    for (const f of forgotten) {
      f.e.sha1 = f.sha1;
      f.e.sha256 = f.sha256;
    }
    expect(reserved.bytes().equals(want)).toBe(true);
    writeSbom(root, keep, m); // leave the root as the other cases expect it
  });
});

describe('SBOM text (files and their relationships written directly)', () => {
  it('is the canonical JSON of makeSbom for names that need escaping, and for a root without files', async () => {
    const { createStagingRoot } = await import('../../src/stage/root.js');
    const dir = mkdtempSync(join(tmpdir(), 'mkimg-sbom-text-'));
    try {
      const m = testManifest({ name: 'odd "name" é' });
      const empty = await createStagingRoot(join(dir, 'empty'));
      expect(sbomBytes(empty, new Set(), m).equals(canonicalJsonBytes(makeSbom(empty, new Set(), m)))).toBe(true);
      const root = await createStagingRoot(join(dir, 'root'));
      const names = ['/data/q"uote\\back', '/data/é日', '/data/new\nline', '/data/😀', '/data/tab\there'];
      for (const [i, p] of names.entries()) writeRootFile(root, p, `content ${i}\n`, 'file:/data');
      writeRootFile(root, '/etc/generated', 'g\n', 'generated:accounts');
      writeRootFile(root, '/etc/other', 'o\n', 'layout'); // neither an input nor generated: no comment
      const keep = new Set(root.entries.keys());
      const want = canonicalJsonBytes(makeSbom(root, keep, m));
      const got = sbomBytes(root, keep, m);
      expect(got.toString('utf8')).toBe(want.toString('utf8'));
      expect(got.equals(want)).toBe(true);
      expect(JSON.parse(got.toString('utf8')).files.map((f: any) => f.fileName)).toEqual(expect.arrayContaining(names));
      // Reserved with every file unhashed, filled once they are: the same bytes.
      const files = [...keep].map((p) => root.entries.get(p)!).filter((e) => e.type === 'file');
      const digest = (alg: string, e: { path: string }) =>
        createHash(alg)
          .update(readFileSync(join(root.dir, e.path)))
          .digest('hex');
      const saved = files.map((e) => ({ e, sha1: digest('sha1', e), sha256: digest('sha256', e) }));
      for (const f of saved) {
        delete f.e.sha1;
        delete f.e.sha256;
      }
      const reserved = reserveSbom(root, keep, m, undefined, (e) => saved.some((f) => f.e === e));
      expect(root.entries.get(SBOM_PATH)!.size).toBe(want.length);
      for (const f of saved) {
        f.e.sha1 = f.sha1;
        f.e.sha256 = f.sha256;
      }
      expect(reserved.bytes().equals(want)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

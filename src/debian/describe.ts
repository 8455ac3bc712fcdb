/**
 * What the image's metadata says about Debian packages: which Debian release
 * the packages come from (os-release, the purl distro), a package's purl and
 * its supplier, control-file fields. The SBOM and the system files ask here;
 * nothing outside src/debian/ spells a purl or knows a codename.
 */
import { posix } from 'node:path';
import type { Manifest } from '../manifest/types.js';
import type { DescribedPackage } from '../packages/source.js';
import type { StagedPackage, StagingRoot } from '../stage/types.js';
import { readRootFile } from '../system/rootfs.js';
import { pathOrder } from '../util/path-order.js';
import { spdxLicenseOf } from './license.js';
import { copyrightPathOf, sourcePackageOf, type SourcePackage } from './source-package.js';
import { contributingPackages, copyrightPaths } from './statusd.js';

/** Debian codenames mkimg knows, to name the image's base honestly. */
export const DEBIAN_RELEASES: Record<string, string> = {
  buster: '10',
  bullseye: '11',
  bookworm: '12',
  trixie: '13',
  forky: '14',
};

export interface DebianBase {
  codename: string;
  version?: string; // undefined for sid/unstable/testing
}

/**
 * Which Debian release the packages come from, from the lock's suites (else
 * the sources' suites): "bookworm-security" counts as bookworm. Undefined when
 * no suite names a Debian release (then nothing claims to be Debian).
 */
export function debianBase(manifest: Manifest): DebianBase | undefined {
  const suites = [
    ...(manifest.lock?.packages ?? []).map((p) => p.suite),
    ...(manifest.sources ?? []).flatMap((s) => s.suites),
  ];
  const counts = new Map<string, number>();
  for (const s of suites) {
    const code = s.split(/[-/]/)[0];
    if (code in DEBIAN_RELEASES || code === 'sid') counts.set(code, (counts.get(code) ?? 0) + 1);
  }
  if (counts.size === 0) return undefined;
  const [codename] = [...counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0];
  return { codename, version: DEBIAN_RELEASES[codename] };
}

/** The purl distro qualifier for a base: "debian-12"; "debian-sid" for unstable. */
export function purlDistro(base: DebianBase | undefined): string {
  if (!base) return 'debian-12';
  return `debian-${base.version ?? base.codename}`;
}

/**
 * purl for a Debian binary package (name and version percent-encoded as the
 * purl spec asks; qualifiers in key order). `upstream` names the source
 * package when it differs from the binary (libc6 -> glibc): advisories are
 * filed under the source package, and SBOM-based scanners (Grype) match on it.
 */
export function debPurl(name: string, version: string, arch: string, distro: string, upstream?: SourcePackage): string {
  let purl = `pkg:deb/debian/${encodeURIComponent(name)}@${encodeURIComponent(version)}?arch=${encodeURIComponent(arch)}&distro=${encodeURIComponent(distro)}`;
  if (upstream && (upstream.name !== name || upstream.version !== undefined)) {
    purl += `&upstream=${encodeURIComponent(upstream.version ? `${upstream.name}@${upstream.version}` : upstream.name)}`;
  }
  return purl;
}

/** "Name <mail>" -> SPDX supplier ("Organization:" for teams and lists, else "Person:"). */
export function supplierOf(maintainer: string | undefined): string {
  if (!maintainer) return 'NOASSERTION';
  const m = /^\s*(.*?)\s*<([^>]*)>\s*$/.exec(maintainer);
  const name = (m ? m[1] : maintainer).replace(/[()]/g, '').trim();
  const mail = m ? m[2].trim() : '';
  const org = /maintainers|team|group|developers|packagers|project|debian/i.test(name) || /lists\.|alioth/i.test(mail);
  return `${org ? 'Organization' : 'Person'}: ${name}${mail ? ` (${mail})` : ''}`;
}

export function controlField(control: string, field: string): string | undefined {
  const re = new RegExp(`^${field}:[ \\t]*(.*)$`, 'im');
  const m = re.exec(control);
  return m ? m[1].trim() : undefined;
}

/** The SBOM's view of the packages that keep files (those of status.d), with their Debian facts. */
export function describeInstalled(
  root: StagingRoot,
  keep: Set<string>,
  manifest: Manifest,
  sha256ByName?: Map<string, string> | Record<string, string>,
): DescribedPackage[] {
  const sha = (p: StagedPackage): string =>
    (sha256ByName instanceof Map ? sha256ByName.get(p.name) : sha256ByName?.[p.name]) ?? p.sha256;
  const distro = purlDistro(debianBase(manifest));
  const poolFile = new Map((manifest.lock?.packages ?? []).map((p) => [p.name, p.filename]));
  return contributingPackages(root, keep).map(({ pkg, kept }) => {
    const copyright = readRootFile(root, copyrightPathOf(pkg.name))?.toString('utf8');
    const lic = spdxLicenseOf(copyright, pkg.name);
    const source = controlField(pkg.control, 'Source');
    const homepage = controlField(pkg.control, 'Homepage');
    const fileName = poolFile.get(pkg.name);
    return {
      name: pkg.name,
      version: pkg.version,
      // What its maintainer scripts would have generated (byte code) is its own too.
      paths: pkg.generated ? [...kept, ...pkg.generated.filter((p) => keep.has(p))].sort(pathOrder) : kept,
      licensePaths: copyrightPaths(root, pkg),
      purl: debPurl(pkg.name, pkg.version, pkg.architecture, distro, sourcePackageOf(pkg.control, pkg.name)),
      supplier: supplierOf(controlField(pkg.control, 'Maintainer')),
      homepage: homepage && /^https?:\/\//.test(homepage) ? homepage : undefined,
      sourceInfo: source ? `built package from: ${source}` : undefined,
      summary: controlField(pkg.control, 'Description'),
      fileName: fileName ? posix.basename(fileName) : undefined,
      sha256: sha(pkg),
      license: {
        expression: lic.expression,
        extracted: lic.extracted,
        comment: lic.debian ? `Debian copyright file (DEP-5) declares: ${lic.debian}` : undefined,
      },
    };
  });
}

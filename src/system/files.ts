/**
 * System files that maintainer scripts would have written on a Debian
 * system: /etc/os-release, /etc/nsswitch.conf, /tmp (1777), the CA bundle in
 * /etc/ssl/certs, and /etc/localtime. Bytes are a function of the root's
 * package content and the manifest only.
 */
import { posix } from 'node:path';
import type { Manifest } from '../manifest/types.js';
import type { StagingRoot } from '../stage/types.js';
import { MkimgError } from '../util/errors.js';
import { debianBase } from '../debian/describe.js';
import { fingerprint, singleCertificate, subjectHash } from './certhash.js';
import { pathOrder } from '../util/path-order.js';
import {
  ensureDir,
  isFileInRoot,
  normImagePath,
  readRootFile,
  resolveInRoot,
  writeRootFile,
  writeRootSymlink,
} from './rootfs.js';

/** An os-release value, double-quoted with the escapes os-release(5) asks for. */
function osReleaseQuote(v: string): string {
  return '"' + v.replace(/[\\"$`]/g, (c) => '\\' + c).replace(/\n/g, ' ') + '"';
}

/**
 * os-release text mkimg generates when base-files is not in the image: the
 * field set distroless writes (PRETTY_NAME, NAME, ID, VERSION_ID, VERSION,
 * HOME_URL, SUPPORT_URL), plus VERSION_CODENAME as Debian's own file has it.
 * ID and VERSION_ID are what scanners match Debian's security data on; the
 * names do not claim the image *is* Debian. The URLs are the image's own,
 * from its OCI labels (mkimg has none to claim): HOME_URL from
 * org.opencontainers.image.url (else .source), SUPPORT_URL from
 * org.opencontainers.image.documentation; absent labels, absent fields.
 */
export function generatedOsRelease(manifest: Manifest): string {
  const base = debianBase(manifest);
  const lines: string[] = [];
  if (base) {
    const what = base.version ? `Debian ${base.version}` : `Debian ${base.codename}`;
    lines.push(`PRETTY_NAME="mkimg image (${what} packages)"`, 'NAME="mkimg image"', 'ID=debian');
    if (base.version) lines.push(`VERSION_ID="${base.version}"`, `VERSION="${base.version} (${base.codename})"`);
    lines.push(`VERSION_CODENAME=${base.codename}`);
  } else {
    lines.push('PRETTY_NAME="mkimg image"', 'NAME="mkimg image"', 'ID=mkimg');
  }
  const labels = manifest.config?.labels ?? {};
  const home = labels['org.opencontainers.image.url'] ?? labels['org.opencontainers.image.source'];
  const support = labels['org.opencontainers.image.documentation'];
  if (home) lines.push(`HOME_URL=${osReleaseQuote(home)}`);
  if (support) lines.push(`SUPPORT_URL=${osReleaseQuote(support)}`);
  return lines.join('\n') + '\n';
}

/**
 * /etc/debian_version as base-files ships it, from the locked suite: the
 * release number ("12") for a numbered release, "<codename>" for sid.
 * Trivy identifies a Debian base by this file alone. Undefined when the
 * packages do not come from Debian.
 */
export function generatedDebianVersion(manifest: Manifest): string | undefined {
  const base = debianBase(manifest);
  if (!base) return undefined;
  return `${base.version ?? base.codename}\n`;
}

export function writeOsRelease(root: StagingRoot, manifest: Manifest): string[] {
  const origin = 'generated:os-release';
  const out: string[] = [];
  if (!isFileInRoot(root, '/usr/lib/os-release') && !isFileInRoot(root, '/etc/os-release')) {
    const r = writeRootFile(root, '/usr/lib/os-release', generatedOsRelease(manifest), origin);
    out.push(...r.created, r.path);
  }
  if (!root.entries.has('/etc/os-release')) {
    const r = writeRootSymlink(root, '/etc/os-release', '../usr/lib/os-release', origin);
    out.push(...r.created, r.path);
  }
  const debianVersion = generatedDebianVersion(manifest);
  if (debianVersion !== undefined && !root.entries.has('/etc/debian_version')) {
    const r = writeRootFile(root, '/etc/debian_version', debianVersion, origin);
    out.push(...r.created, r.path);
  }
  // Scanners identify the base by these: keep them even when base-files shipped them.
  for (const p of ['/etc/os-release', '/usr/lib/os-release', '/etc/debian_version'])
    if (root.entries.has(p)) out.push(p);
  return withTargets(root, out);
}

/**
 * The paths plus, for each symlink among them, the entry it finally
 * resolves to: what a writer returns must be keepable without dangling links.
 */
export function withTargets(root: StagingRoot, paths: string[]): string[] {
  const out = new Set(paths);
  for (const p of paths) {
    if (root.entries.get(p)?.type !== 'symlink') continue;
    const r = resolveInRoot(root, p);
    if (r !== undefined && root.entries.has(r)) out.add(r);
  }
  return [...out];
}

export const DEFAULT_NSSWITCH = `# /etc/nsswitch.conf, written by mkimg (no libc-bin postinst ran)
passwd:         files
group:          files
shadow:         files
gshadow:        files

hosts:          files dns
networks:       files

protocols:      files
services:       files
ethers:         files
rpc:            files
`;

/** /etc/nsswitch.conf unless shipped: libc-bin's template when present (as its postinst does), else DEFAULT_NSSWITCH. */
export function writeNsswitch(root: StagingRoot): string[] {
  if (root.entries.has('/etc/nsswitch.conf')) return [];
  const template = readRootFile(root, '/usr/share/libc-bin/nsswitch.conf');
  const r = writeRootFile(root, '/etc/nsswitch.conf', template ?? DEFAULT_NSSWITCH, 'generated:nsswitch');
  return [...r.created, r.path];
}

/** /tmp as a root-owned directory with mode 1777. */
export function ensureTmp(root: StagingRoot): string[] {
  const e = root.entries.get('/tmp');
  if (e && e.type !== 'dir') {
    throw new MkimgError('input', `/tmp in the staging root is a ${e.type} (from ${e.origin}), not a directory`, {
      hint: 'remove it from the files: inputs',
    });
  }
  if (e) {
    e.mode = 0o1777;
    e.uid = 0;
    e.gid = 0;
    return ['/tmp'];
  }
  return ensureDir(root, '/tmp', 'generated:tmp', { mode: 0o1777, uid: 0, gid: 0 }).created;
}

// ---------------------------------------------------------------------------
// CA certificates, as update-ca-certificates builds them.

export const CERTSDIR = '/usr/share/ca-certificates';
export const LOCALCERTSDIR = '/usr/local/share/ca-certificates';
export const CERTSCONF = '/etc/ca-certificates.conf';
export const ETCCERTSDIR = '/etc/ssl/certs';
export const CERTBUNDLE = '/etc/ssl/certs/ca-certificates.crt';

/** Every "*.crt" regular file below dir (following symlinks, as find -L), relative, sorted by bytes (LC_ALL=C sort). */
function findCrts(root: StagingRoot, dir: string): string[] {
  const prefix = dir + '/';
  const out: string[] = [];
  for (const p of root.entries.keys()) {
    if (!p.startsWith(prefix) || !p.endsWith('.crt')) continue;
    if (isFileInRoot(root, p)) out.push(p.slice(prefix.length));
  }
  return out.sort(pathOrder);
}

/** The PEM link name update-ca-certificates gives a certificate file. */
export function pemLinkName(crtPath: string): string {
  const base = posix.basename(crtPath, '.crt').replace(/ /g, '_').replace(/[()]/g, '=').replace(/,/g, '_');
  return base + '.pem';
}

export interface CaPlan {
  /** Absolute image paths of the certificates, in bundle order. */
  certs: string[];
  bundle: Buffer;
  /** Where the certificate list came from. */
  from: 'conf' | 'all';
  /** Names listed in the conf but missing from the root (update-ca-certificates warns about them). */
  missing: string[];
}

/**
 * Decide the bundle as update-ca-certificates would: the certificates named
 * in /etc/ca-certificates.conf in its order (lines starting with "#" or "!"
 * and empty lines skipped; names not found skipped), or, when that file is
 * absent or empty (no postinst ran), every *.crt below /usr/share/ca-certificates
 * in byte order (what the postinst would have listed). Then the local
 * certificates below /usr/local/share/ca-certificates, sorted. Each file's
 * bytes are appended verbatim, plus "\n" if its last line lacks one.
 * Undefined when there is no certificate at all.
 */
export function planCaBundle(root: StagingRoot): CaPlan | undefined {
  const conf = readRootFile(root, CERTSCONF);
  const certs: string[] = [];
  const missing: string[] = [];
  let from: CaPlan['from'];
  if (conf && conf.length > 0) {
    from = 'conf';
    for (const raw of conf.toString('utf8').split('\n')) {
      if (raw === '' || raw.startsWith('#') || raw.startsWith('!')) continue;
      const name = raw.trim();
      const p = normImagePath(CERTSDIR + '/' + name);
      if (name === '' || !isFileInRoot(root, p)) {
        missing.push(name);
        continue;
      }
      certs.push(p);
    }
  } else {
    from = 'all';
    certs.push(...findCrts(root, CERTSDIR).map((r) => CERTSDIR + '/' + r));
  }
  certs.push(...findCrts(root, LOCALCERTSDIR).map((r) => LOCALCERTSDIR + '/' + r));
  if (certs.length === 0) return undefined;
  const parts: Buffer[] = [];
  for (const c of certs) {
    const b = readRootFile(root, c)!;
    parts.push(b);
    if (b.length > 0 && b[b.length - 1] !== 0x0a) parts.push(Buffer.from('\n'));
  }
  return { certs, bundle: Buffer.concat(parts), from, missing };
}

/**
 * Write /etc/ssl/certs/ca-certificates.crt, the /etc/ssl/certs/<name>.pem
 * symlinks (absolute targets, as update-ca-certificates makes them) and the
 * OpenSSL subject-hash links <hash>.N -> <name>.pem (as `openssl rehash`).
 */
export function writeCaCertificates(root: StagingRoot): string[] {
  const plan = planCaBundle(root);
  if (!plan) return [];
  const origin = 'generated:ca-certificates';
  const out: string[] = [];
  const r = writeRootFile(root, CERTBUNDLE, plan.bundle, origin);
  out.push(...r.created, r.path);
  for (const c of plan.certs) {
    const link = ETCCERTSDIR + '/' + pemLinkName(c);
    const existing = root.entries.get(link);
    if (existing && existing.type !== 'symlink') continue; // a real file someone put there wins
    const l = writeRootSymlink(root, link, c, origin);
    out.push(...l.created, l.path);
  }
  for (const [name, target] of planHashLinks(root)) {
    const l = writeRootSymlink(root, `${ETCCERTSDIR}/${name}`, target, origin);
    out.push(...l.created, l.path);
  }
  // the certificate files the links point at
  out.push(...plan.certs.map((c) => resolveInRoot(root, c)!).filter((p) => root.entries.has(p)));
  return [...new Set(out)];
}

const HASH_LINK = /^[0-9a-f]{8}\.r?[0-9]+$/;

/**
 * The <hash>.N links `openssl rehash /etc/ssl/certs` makes (update-ca-certificates
 * runs it): files of the directory named *.pem, *.crt or *.cer (any case),
 * in byte order, that hold exactly one certificate, grouped by OpenSSL
 * subject hash; N counts up per hash; a certificate identical (SHA-1) to one
 * already linked under the same hash is skipped. Targets are the file names
 * (relative links). Returns [link name, target] pairs.
 */
export function planHashLinks(root: StagingRoot): [string, string][] {
  const prefix = ETCCERTSDIR + '/';
  const names = [...root.entries.keys()]
    .filter((p) => p.startsWith(prefix) && !p.slice(prefix.length).includes('/'))
    .map((p) => p.slice(prefix.length))
    .filter((n) => !HASH_LINK.test(n) && /\.(pem|crt|cer)$/i.test(n))
    .sort(pathOrder);
  const buckets = new Map<string, string[]>(); // hash -> fingerprints in link order
  const links: [string, string][] = [];
  for (const name of names) {
    const bytes = readRootFile(root, prefix + name);
    const der = bytes && singleCertificate(bytes);
    if (!der) continue;
    const hash = subjectHash(der);
    const fp = fingerprint(der);
    const seen = buckets.get(hash) ?? [];
    if (seen.includes(fp)) continue;
    links.push([`${hash}.${seen.length}`, name]);
    seen.push(fp);
    buckets.set(hash, seen);
  }
  return links;
}

// ---------------------------------------------------------------------------
// Time zones: tzdata's files stay as shipped (plain files and relative
// symlinks); mkimg only adds what tzdata's postinst adds by default.

export function writeTimezone(root: StagingRoot): string[] {
  if (!isFileInRoot(root, '/usr/share/zoneinfo/Etc/UTC')) return [];
  const origin = 'generated:timezone';
  const out: string[] = [];
  if (!root.entries.has('/etc/localtime')) {
    const r = writeRootSymlink(root, '/etc/localtime', '/usr/share/zoneinfo/Etc/UTC', origin);
    out.push(...r.created, r.path);
  }
  if (!root.entries.has('/etc/timezone')) {
    const r = writeRootFile(root, '/etc/timezone', 'Etc/UTC\n', origin);
    out.push(...r.created, r.path);
  }
  return withTargets(root, out);
}

/**
 * All system files, in a fixed order. Call after packages and files: inputs
 * are unpacked, before tracing (writeAccounts is separate: src/system/accounts.ts).
 *
 * Returns the image paths the minimizer must keep whatever the checks trace:
 * os-release (written or base-files', with its target and /etc/debian_version),
 * /etc/nsswitch.conf and /tmp. The CA files and /etc/localtime are written
 * too but not returned: they stay when a check reads them or when the
 * `certificates` / `timezones` keep-group asks for them (the groups cover
 * the links and what they point at), so an image that never uses them does
 * not carry them.
 */
export function writeSystemFiles(root: StagingRoot, manifest: Manifest): string[] {
  const keep = [...writeOsRelease(root, manifest), ...writeNsswitch(root), ...ensureTmp(root)];
  writeCaCertificates(root);
  writeTimezone(root);
  return [...new Set(keep)];
}

/**
 * What the CA bundle writer (and update-ca-certificates) produces or reads,
 * and where time zones live: the minimizer's "certificates" and "timezones"
 * keep-groups are these, so minimization never drops what these writers made.
 */
export const CERTIFICATE_PATHS = [
  '/etc/ssl/certs/**',
  '/usr/share/ca-certificates/**',
  '/usr/local/share/ca-certificates/**',
  '/etc/ca-certificates.conf',
  '/usr/lib/ssl/cert.pem',
  '/usr/lib/ssl/certs',
];
export const TIMEZONE_PATHS = ['/usr/share/zoneinfo/**', '/etc/localtime', '/etc/timezone'];

/**
 * The package database scanners read (Trivy, Grype, Syft), in the distroless
 * layout: /var/lib/dpkg/status.d/<package> holds the package's control stanza
 * with "Status: install ok installed". The md5sums (restricted to the files
 * the minimized image keeps) go where dpkg keeps them,
 * /var/lib/dpkg/info/<package>[:arch].md5sums: scanners that take every
 * file in status.d for a control stanza (Trivy before 0.64) fail to parse
 * md5sums lines there, and every reader of md5sums looks in info/.
 * Each listed package keeps its copyright file, so license scanners find one.
 */
import { readEntryContent } from '../stage/fsutil.js';
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import type { StageEntry, StagedPackage, StagingRoot } from '../stage/types.js';
import { posix } from 'node:path';
import { ensureDir, hostPathOf, normImagePath, readRootFile, writeRootFile } from '../system/rootfs.js';
import { isNormalImagePath, pathOrder } from '../util/path-order.js';
import { copyrightPathOf, dpkgInfoName } from './source-package.js';

export const STATUSD_DIR = '/var/lib/dpkg/status.d';
export const DPKG_INFO_DIR = '/var/lib/dpkg/info';

/** Where a package's md5sums go: dpkg's own name for it. */
export function md5sumsPathOf(pkg: StagedPackage): string {
  return `${DPKG_INFO_DIR}/${dpkgInfoName(pkg.control, pkg.name, pkg.architecture)}.md5sums`;
}

/**
 * The paths that make /usr/share/doc/<package>/copyright readable: every
 * symlink passed on the way (Debian links the doc folder of packages built
 * from one source to a sibling's: /usr/share/doc/libpython3.11-stdlib ->
 * libpython3.11-minimal), the file, and their folders. Empty when the
 * package ships no copyright file.
 */
export function copyrightPaths(root: StagingRoot, pkg: StagedPackage): string[] {
  const hops: string[] = [];
  let pending = copyrightPathOf(pkg.name).split('/').filter(Boolean);
  let cur = '/';
  for (let n = 0; pending.length > 0; ) {
    const next = (cur === '/' ? '' : cur) + '/' + pending.shift()!;
    const e = root.entries.get(next);
    if (e?.type === 'symlink' && e.linkTarget !== undefined) {
      if (++n > 40) return [];
      hops.push(next);
      pending = [
        ...normImagePath(posix.join(e.linkTarget.startsWith('/') ? '/' : cur, e.linkTarget))
          .split('/')
          .filter(Boolean),
        ...pending,
      ];
      cur = '/';
      continue;
    }
    cur = next;
  }
  const file = root.entries.get(cur);
  if (!file || (file.type !== 'file' && file.type !== 'hardlink')) return [];
  const out = new Set<string>();
  for (const p of [...hops, cur]) {
    out.add(p);
    for (let d = posix.dirname(p); d !== '/'; d = posix.dirname(d)) if (root.entries.has(d)) out.add(d);
  }
  if (file.type === 'hardlink' && file.linkTarget) out.add(normImagePath(file.linkTarget));
  return [...out].sort(pathOrder);
}

/**
 * Give a listed package a regular file at /usr/share/doc/<package>/copyright.
 * Debian links the doc folder of packages built from one source to a
 * sibling's (/usr/share/doc/libpython3.11-stdlib -> libpython3.11-minimal);
 * license scanners (Trivy) read copyright files by path and do not follow
 * links, so such a package would have no license. The link (or a linked
 * copyright file) is replaced by a folder holding a copy of the file it led
 * to; the copy counts as the package's own (origin pkg:<name>). Nothing
 * happens when the package ships no copyright file at all.
 */
export function materializeCopyright(root: StagingRoot, pkg: StagedPackage): void {
  const file = copyrightPathOf(pkg.name);
  const direct = root.entries.get(file);
  if (direct && (direct.type === 'file' || direct.type === 'hardlink')) return;
  const bytes = readRootFile(root, file);
  if (bytes === undefined) return;
  const origin = `pkg:${pkg.name}`;
  const docDir = posix.dirname(file);
  for (const p of [file, docDir]) {
    const e = root.entries.get(p);
    if (e?.type !== 'symlink') continue;
    root.entries.delete(p);
    rmSync(hostPathOf(root, p), { force: true });
  }
  const made = writeRootFile(root, file, bytes, origin);
  for (const p of made.created) root.entries.get(p)!.origin = origin;
  pkg.paths.push(...made.created, made.path);
}

/**
 * A package's doc link or copyright file: kept for every listed package,
 * so keeping it does not by itself make a package "contribute".
 */
function isLicensePath(p: string): boolean {
  return /^\/usr\/share\/doc\/[^/]+(\/copyright)?$/.test(p);
}

/** Map a path as a .deb names it to the path in a merged-/usr root. */
export function usrMerged(p: string): string {
  const n = isNormalImagePath(p) ? p : normImagePath(p);
  const m = /^\/(bin|sbin|lib|lib32|lib64|libx32|libo32)(\/.*)?$/.exec(n);
  return m ? '/usr/' + m[1] + (m[2] ?? '') : n;
}

function inKeep(keep: Set<string>, p: string): string | undefined {
  const n = isNormalImagePath(p) ? p : normImagePath(p);
  if (keep.has(n)) return n;
  const m = usrMerged(n);
  if (keep.has(m)) return m;
  return undefined;
}

/**
 * The kept non-directory paths a package contributes: paths it created, in
 * the keep set, whose entry still says the package put it there (a later
 * package or a files: input that overwrote it takes ownership).
 */
export function keptPathsOf(root: StagingRoot, pkg: StagedPackage, keep: Set<string>): string[] {
  const out = new Set<string>();
  for (const raw of pkg.paths) {
    const p = inKeep(keep, raw);
    if (!p) continue;
    const e = root.entries.get(p);
    if (!e || e.type === 'dir' || e.origin !== `pkg:${pkg.name}`) continue;
    out.add(p);
  }
  return [...out].sort(pathOrder);
}

/**
 * Packages that still contribute at least one kept file, link or hardlink
 * (other than a doc link or copyright file, which mkimg keeps for every
 * listed package), sorted by name.
 */
export function contributingPackages(root: StagingRoot, keep: Set<string>): { pkg: StagedPackage; kept: string[] }[] {
  return root.packages
    .map((pkg) => ({ pkg, kept: keptPathsOf(root, pkg, keep) }))
    .filter((x) => x.kept.some((p) => !isLicensePath(p)))
    .sort((a, b) => pathOrder(a.pkg.name, b.pkg.name));
}

/**
 * The status.d stanza: the control file's fields verbatim, with
 * "Status: install ok installed" after Package (where dpkg puts it), ending
 * in exactly one newline.
 */
export function statusStanza(control: string): string {
  const lines = control.replace(/\r\n/g, '\n').replace(/\n+$/, '').split('\n');
  const out: string[] = [];
  let placed = false;
  for (const line of lines) {
    if (/^Status:/i.test(line)) continue;
    out.push(line);
    if (!placed && /^Package:/i.test(line)) {
      out.push('Status: install ok installed');
      placed = true;
    }
  }
  if (!placed) out.unshift('Status: install ok installed');
  return out.join('\n') + '\n';
}

function entryContent(root: StagingRoot, e: StageEntry): Buffer {
  let f = e;
  if (f.type === 'hardlink' && f.linkTarget) f = root.entries.get(normImagePath(f.linkTarget)) ?? f;
  return readEntryContent(root.dir, f);
}

/**
 * md5sums limited to kept files. The package's own lines are kept verbatim
 * (paths as the package names them, e.g. "bin/bash"); when the package has
 * no md5sums file, lines are computed from the kept regular files.
 */
export function keptMd5sums(root: StagingRoot, pkg: StagedPackage, kept: string[]): string {
  const keptSet = new Set(kept);
  if (pkg.md5sums !== undefined) {
    const lines = pkg.md5sums.split('\n').filter((l) => {
      const m = /^[0-9a-f]{32}  (.+)$/.exec(l);
      if (!m) return false;
      const p = '/' + m[1];
      const n = isNormalImagePath(p) ? p : normImagePath(p);
      return keptSet.has(n) || keptSet.has(usrMerged(n));
    });
    return lines.map((l) => l + '\n').join('');
  }
  const lines: string[] = [];
  for (const p of kept) {
    const e = root.entries.get(p)!;
    if (e.type !== 'file' && e.type !== 'hardlink') continue;
    const md5 = createHash('md5').update(entryContent(root, e)).digest('hex');
    lines.push(`${md5}  ${p.slice(1)}\n`);
  }
  return lines.join('');
}

/**
 * Write status.d (and info/*.md5sums) for every package that contributes a
 * kept path. Returns the image paths written (files and any directories
 * created) and the copyright files of the listed packages (with the links
 * and folders that lead to them), so the caller adds them to the keep set.
 * Packages minimized away are not listed.
 */
export function writeStatusD(root: StagingRoot, keep: Set<string>): string[] {
  const origin = 'generated:status.d';
  const out: string[] = [];
  const contributing = contributingPackages(root, keep);
  if (contributing.length === 0) return [];
  out.push(...ensureDir(root, STATUSD_DIR, origin).created);
  // The directory and its ancestors must be kept even when they predate us.
  for (let p = STATUSD_DIR; p !== '/'; p = posix.dirname(p)) out.push(p);
  for (const { pkg, kept } of contributing) {
    const s = writeRootFile(root, `${STATUSD_DIR}/${pkg.name}`, statusStanza(pkg.control), origin);
    out.push(...s.created, s.path);
    // The copyright file is listed in the package's md5sums like any file it ships.
    materializeCopyright(root, pkg);
    const license = copyrightPaths(root, pkg);
    out.push(...license);
    const md5 = keptMd5sums(root, pkg, [...new Set([...kept, ...license])]);
    if (md5 !== '') {
      const m = writeRootFile(root, md5sumsPathOf(pkg), md5, origin);
      out.push(...m.created, m.path);
      for (let p = DPKG_INFO_DIR; p !== '/'; p = posix.dirname(p)) out.push(p);
    }
  }
  return [...new Set(out)].sort(pathOrder);
}

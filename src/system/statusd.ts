/**
 * The package database scanners read (Trivy, Grype, Syft), in the distroless
 * layout: /var/lib/dpkg/status.d/<package> holds the package's control stanza
 * with "Status: install ok installed", /var/lib/dpkg/status.d/<package>.md5sums
 * its md5sums restricted to the files the minimized image keeps.
 */
import { readEntryContent } from '../stage/fsutil.js';
import { createHash } from 'node:crypto';
import type { StageEntry, StagedPackage, StagingRoot } from '../stage/types.js';
import { posix } from 'node:path';
import { byteOrder, ensureDir, normImagePath, writeRootFile } from './rootfs.js';

export const STATUSD_DIR = '/var/lib/dpkg/status.d';

/** Map a path as a .deb names it to the path in a merged-/usr root. */
export function usrMerged(p: string): string {
  const n = normImagePath(p);
  const m = /^\/(bin|sbin|lib|lib32|lib64|libx32|libo32)(\/.*)?$/.exec(n);
  return m ? '/usr/' + m[1] + (m[2] ?? '') : n;
}

function inKeep(keep: Set<string>, p: string): string | undefined {
  const n = normImagePath(p);
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
  return [...out].sort(byteOrder);
}

/** Packages that still contribute at least one kept file, link or hardlink, sorted by name. */
export function contributingPackages(root: StagingRoot, keep: Set<string>): { pkg: StagedPackage; kept: string[] }[] {
  return root.packages
    .map((pkg) => ({ pkg, kept: keptPathsOf(root, pkg, keep) }))
    .filter((x) => x.kept.length > 0)
    .sort((a, b) => byteOrder(a.pkg.name, b.pkg.name));
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
      return keptSet.has(normImagePath(p)) || keptSet.has(usrMerged(p));
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
 * Write status.d for every package that contributes a kept path. Returns the
 * image paths written (files and any directories created) so the caller adds
 * them to the keep set. Packages minimized away are not listed.
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
    const md5 = keptMd5sums(root, pkg, kept);
    if (md5 !== '') {
      const m = writeRootFile(root, `${STATUSD_DIR}/${pkg.name}.md5sums`, md5, origin);
      out.push(...m.created, m.path);
    }
  }
  return [...new Set(out)].sort(byteOrder);
}

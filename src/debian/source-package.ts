/**
 * Facts about an installed Debian binary package that scanners key on,
 * taken from its control file: the source package it was built from (the
 * name security advisories are filed under), the name dpkg gives its info
 * files, and where its copyright file lives.
 */
import { parseDeb822 } from './control.js';

export interface SourcePackage {
  name: string;
  /** Set only when the source version differs from the binary's (binNMUs: "Source: glibc (2.36-9)"). */
  version?: string;
}

/**
 * The source package of a binary package: the control file's `Source:` field
 * ("name" or "name (version)"), else the binary's own name (dpkg's rule).
 */
export function sourcePackageOf(control: string, binaryName: string): SourcePackage {
  const stanza = parseDeb822(control)[0];
  const raw = stanza?.get('Source')?.trim();
  if (!raw) return { name: binaryName };
  const m = /^(\S+)(?:\s*\(\s*([^)\s]+)\s*\))?/.exec(raw);
  if (!m) return { name: binaryName };
  return m[2] ? { name: m[1], version: m[2] } : { name: m[1] };
}

/**
 * The name dpkg gives the package's files under /var/lib/dpkg/info:
 * "name:arch" for `Multi-Arch: same` packages (several architectures can be
 * installed side by side), else "name".
 */
export function dpkgInfoName(control: string, binaryName: string, architecture: string): string {
  const stanza = parseDeb822(control)[0];
  return stanza?.get('Multi-Arch')?.trim() === 'same' ? `${binaryName}:${architecture}` : binaryName;
}

/** Where Debian policy (§12.5) puts a package's copyright file. */
export function copyrightPathOf(binaryName: string): string {
  return `/usr/share/doc/${binaryName}/copyright`;
}

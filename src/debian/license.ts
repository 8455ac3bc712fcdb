/**
 * Licenses from Debian machine-readable copyright files (DEP-5,
 * copyright-format 1.0): the first License: of the "Files: *" paragraph,
 * mapped to an SPDX license expression. Pure.
 */

/** Debian short names -> SPDX identifiers (the common ones; the rest become LicenseRef-). */
const DEBIAN_TO_SPDX: Record<string, string> = {
  'gpl-1': 'GPL-1.0-only',
  'gpl-1+': 'GPL-1.0-or-later',
  'gpl-2': 'GPL-2.0-only',
  'gpl-2+': 'GPL-2.0-or-later',
  'gpl-3': 'GPL-3.0-only',
  'gpl-3+': 'GPL-3.0-or-later',
  'lgpl-2': 'LGPL-2.0-only',
  'lgpl-2+': 'LGPL-2.0-or-later',
  'lgpl-2.1': 'LGPL-2.1-only',
  'lgpl-2.1+': 'LGPL-2.1-or-later',
  'lgpl-3': 'LGPL-3.0-only',
  'lgpl-3+': 'LGPL-3.0-or-later',
  'agpl-3': 'AGPL-3.0-only',
  'agpl-3+': 'AGPL-3.0-or-later',
  'gfdl-1.2': 'GFDL-1.2-only',
  'gfdl-1.2+': 'GFDL-1.2-or-later',
  'gfdl-1.3': 'GFDL-1.3-only',
  'gfdl-1.3+': 'GFDL-1.3-or-later',
  'apache-2': 'Apache-2.0',
  'apache-2.0': 'Apache-2.0',
  artistic: 'Artistic-1.0-Perl',
  'artistic-1.0': 'Artistic-1.0',
  'artistic-2.0': 'Artistic-2.0',
  'bsd-2-clause': 'BSD-2-Clause',
  'bsd-3-clause': 'BSD-3-Clause',
  'bsd-4-clause': 'BSD-4-Clause',
  'bsl-1.0': 'BSL-1.0',
  'cc0-1.0': 'CC0-1.0',
  cc0: 'CC0-1.0',
  curl: 'curl',
  expat: 'MIT',
  mit: 'MIT',
  isc: 'ISC',
  'mpl-1.1': 'MPL-1.1',
  'mpl-2.0': 'MPL-2.0',
  openssl: 'OpenSSL',
  'psf-2': 'PSF-2.0',
  'python-2.0': 'Python-2.0',
  x11: 'X11',
  zlib: 'Zlib',
  ftl: 'FTL',
  'unicode-dfs-2016': 'Unicode-DFS-2016',
  sleepycat: 'Sleepycat',
  'ofl-1.1': 'OFL-1.1',
  wtfpl: 'WTFPL',
  unlicense: 'Unlicense',
  'bzip2-1.0.6': 'bzip2-1.0.6',
  'gpl-2.0': 'GPL-2.0-only',
  'gpl-2.0+': 'GPL-2.0-or-later',
  'gpl-3.0': 'GPL-3.0-only',
  'gpl-3.0+': 'GPL-3.0-or-later',
  'mpl-2.0+': 'MPL-2.0',
};

export interface CopyrightParagraph {
  fields: Map<string, string>; // lower-case field name -> value (continuation lines joined with \n)
}

/** Split a deb822 text into paragraphs of fields. */
export function parseDeb822(text: string): CopyrightParagraph[] {
  const paras: CopyrightParagraph[] = [];
  let cur: Map<string, string> | undefined;
  let last: string | undefined;
  for (const line of text.replace(/\r\n/g, '\n').split('\n')) {
    if (line.trim() === '') {
      if (cur && cur.size > 0) paras.push({ fields: cur });
      cur = undefined;
      last = undefined;
      continue;
    }
    if (line.startsWith('#')) continue;
    if (/^[ \t]/.test(line)) {
      if (cur && last) cur.set(last, cur.get(last)! + '\n' + line.trim());
      continue;
    }
    const m = /^([^:\s]+):[ \t]*(.*)$/.exec(line);
    if (!m) continue;
    cur ??= new Map();
    last = m[1].toLowerCase();
    cur.set(last, m[2].trim());
  }
  if (cur && cur.size > 0) paras.push({ fields: cur });
  return paras;
}

/** Is this a machine-readable (DEP-5) copyright file? */
export function isDep5(text: string): boolean {
  const first = parseDeb822(text)[0];
  const fmt = first?.fields.get('format') ?? first?.fields.get('format-specification');
  return fmt !== undefined && /copyright-format|dep-?5/i.test(fmt);
}

/** The Debian license short name(s) of the "Files: *" paragraph, or undefined. */
export function debianLicenseOf(copyright: string): string | undefined {
  if (!isDep5(copyright)) return undefined;
  for (const p of parseDeb822(copyright).slice(1)) {
    const files = p.fields.get('files');
    if (files === undefined) continue;
    if (!files.split(/\s+/).includes('*')) continue;
    const lic = p.fields.get('license');
    if (!lic) return undefined;
    const short = lic.split('\n')[0].trim();
    return short === '' ? undefined : short;
  }
  return undefined;
}

export interface SpdxLicense {
  /** SPDX license expression, or NOASSERTION. */
  expression: string;
  /** LicenseRef- ids used in expression, with the text they stand for. */
  extracted: { licenseId: string; name: string; extractedText: string }[];
  /** The Debian spelling, when there was one. */
  debian?: string;
}

function licenseRef(name: string): string {
  return 'LicenseRef-' + name.replace(/[^A-Za-z0-9.-]+/g, '-').replace(/^-+|-+$/g, '');
}

/** The standalone "License: <name>" paragraph text, if the file has one. */
function standaloneText(copyright: string, name: string): string | undefined {
  for (const p of parseDeb822(copyright)) {
    if (p.fields.has('files')) continue;
    const lic = p.fields.get('license');
    if (!lic) continue;
    const [head, ...body] = lic.split('\n');
    if (head.trim().toLowerCase() === name.toLowerCase() && body.length > 0) return body.join('\n');
  }
  return undefined;
}

/**
 * Map a copyright file to an SPDX expression. "or"/"and" (and "|", ",")
 * become OR/AND; known Debian names map to SPDX ids; any other term (and any
 * "with ... exception" clause) becomes a LicenseRef- whose text is taken
 * from the file's standalone License paragraph.
 */
export function spdxLicenseOf(copyright: string | undefined, pkgName: string): SpdxLicense {
  if (copyright === undefined) return { expression: 'NOASSERTION', extracted: [] };
  const debian = debianLicenseOf(copyright);
  if (!debian) return { expression: 'NOASSERTION', extracted: [] };
  const extracted = new Map<string, { licenseId: string; name: string; extractedText: string }>();
  const refFor = (term: string): string => {
    const id = licenseRef(term);
    if (!extracted.has(id)) {
      extracted.set(id, {
        licenseId: id,
        name: term,
        extractedText:
          standaloneText(copyright, term) ?? `The license "${term}", as named in /usr/share/doc/${pkgName}/copyright.`,
      });
    }
    return id;
  };
  if (/[()]/.test(debian)) {
    return { expression: refFor(debian), extracted: [...extracted.values()], debian };
  }
  // Split into alternatives/conjunctions.
  const tokens = debian
    .replace(/\s*\|\s*/g, ' or ')
    .replace(/\s*,\s*/g, ' and ')
    .split(/\s+/)
    .filter(Boolean);
  const out: string[] = [];
  let term: string[] = [];
  const flush = (): void => {
    if (term.length === 0) return;
    const t = term.join(' ');
    const mapped = term.length === 1 ? DEBIAN_TO_SPDX[t.toLowerCase()] : undefined;
    out.push(mapped ?? refFor(t));
    term = [];
  };
  for (const tok of tokens) {
    const l = tok.toLowerCase();
    if (l === 'or' || l === 'and') {
      flush();
      if (out.length > 0 && !/^(OR|AND)$/.test(out[out.length - 1])) out.push(l.toUpperCase());
    } else term.push(tok);
  }
  flush();
  while (out.length > 0 && /^(OR|AND)$/.test(out[out.length - 1])) out.pop();
  if (out.length === 0) return { expression: 'NOASSERTION', extracted: [], debian };
  // Mixed AND/OR without parentheses: SPDX gives AND precedence, as DEP-5 does.
  return { expression: out.join(' '), extracted: [...extracted.values()], debian };
}

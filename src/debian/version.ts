/**
 * Debian version ordering, as dpkg defines it (deb-version(7)):
 * [epoch:]upstream[-revision]; each part compared by alternating runs of
 * non-digits (letters sort before non-letters, `~` before everything, even the
 * end of the string) and digits (numerically).
 */

export interface ParsedVersion {
  epoch: number;
  upstream: string;
  revision: string;
}

export function parseVersion(v: string): ParsedVersion {
  const s = v.trim();
  let epoch = 0;
  let rest = s;
  const colon = s.indexOf(':');
  if (colon >= 0) {
    const e = s.slice(0, colon);
    epoch = /^\d+$/.test(e) ? Number(e) : 0;
    rest = s.slice(colon + 1);
  }
  const dash = rest.lastIndexOf('-');
  if (dash >= 0) return { epoch, upstream: rest.slice(0, dash), revision: rest.slice(dash + 1) };
  return { epoch, upstream: rest, revision: '' };
}

function order(c: number): number {
  // c: char code, or 0 for "end of string"
  if (c === 0) return 0;
  if (c >= 48 && c <= 57) return 0; // digits never reach here in lexical runs
  if ((c >= 65 && c <= 90) || (c >= 97 && c <= 122)) return c;
  if (c === 126) return -1; // '~'
  return c + 256;
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/** dpkg's verrevcmp on one part. */
function compareFragment(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    let firstDiff = 0;
    while ((i < a.length && !isDigit(a.charCodeAt(i))) || (j < b.length && !isDigit(b.charCodeAt(j)))) {
      const ac = i < a.length ? order(a.charCodeAt(i)) : 0;
      const bc = j < b.length ? order(b.charCodeAt(j)) : 0;
      if (ac !== bc) return ac - bc;
      i++;
      j++;
    }
    while (i < a.length && a.charCodeAt(i) === 48) i++;
    while (j < b.length && b.charCodeAt(j) === 48) j++;
    while (i < a.length && isDigit(a.charCodeAt(i)) && j < b.length && isDigit(b.charCodeAt(j))) {
      if (!firstDiff) firstDiff = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (i < a.length && isDigit(a.charCodeAt(i))) return 1;
    if (j < b.length && isDigit(b.charCodeAt(j))) return -1;
    if (firstDiff) return firstDiff;
  }
  return 0;
}

/** Negative if a < b, 0 if equal, positive if a > b (Debian ordering). */
export function compareVersions(a: string, b: string): number {
  if (a === b) return 0;
  const pa = parseVersion(a);
  const pb = parseVersion(b);
  if (pa.epoch !== pb.epoch) return pa.epoch < pb.epoch ? -1 : 1;
  const u = compareFragment(pa.upstream, pb.upstream);
  if (u !== 0) return u < 0 ? -1 : 1;
  const r = compareFragment(pa.revision, pb.revision);
  return r < 0 ? -1 : r > 0 ? 1 : 0;
}

export type VersionOp = '<<' | '<=' | '=' | '>=' | '>>';

/** Does `version` satisfy `op ref`? (Obsolete `<` and `>` mean `<=` and `>=`, as dpkg reads them.) */
export function satisfiesVersion(version: string, op: VersionOp | '<' | '>', ref: string): boolean {
  const c = compareVersions(version, ref);
  switch (op) {
    case '<<':
      return c < 0;
    case '<=':
    case '<':
      return c <= 0;
    case '=':
      return c === 0;
    case '>=':
    case '>':
      return c >= 0;
    case '>>':
      return c > 0;
  }
}

/**
 * UTF-8 byte order of two strings (the order of every sorted list mkimg
 * writes into an image) without encoding both for every comparison: below
 * the surrogates, UTF-16 code unit order is code point order, which UTF-8
 * keeps. A first difference involving a surrogate (a supplementary
 * character, or a lone one that UTF-8 turns into U+FFFD) compares the
 * encoded bytes. A proper prefix sorts first in both orders (a lone high
 * surrogate at its end, EF BF BD, sorts before any 4-byte sequence F0..F4).
 */
export function pathOrder(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y)
      return x < 0xd800 && y < 0xd800 ? x - y : Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
  }
  return a.length - b.length;
}

/** The parent of a normalized absolute image path ("/" for "/" and for a top-level name). */
export function imageParent(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

/**
 * Whether an image path is already in the form normImagePath gives (absolute,
 * no empty, "." or ".." component, no trailing slash): such a path needs no
 * normalizing, which is most of what sorting and looking up thousands of
 * package paths would otherwise cost.
 */
export function isNormalImagePath(p: string): boolean {
  if (p === '/') return true;
  return p.charCodeAt(0) === 0x2f && !p.endsWith('/') && !p.includes('//') && !DOT_COMPONENT.test(p);
}

const DOT_COMPONENT = /\/\.\.?(?:\/|$)/;

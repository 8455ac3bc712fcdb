/**
 * "Did you mean …?" for names a user types (suites, commands): the known
 * names within a small edit distance of the typed one, closest first.
 */

/** Levenshtein distance with adjacent transpositions counted as one edit ("bookwrom" → "bookworm" is 1). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** Known names close to `typed` (at most 2 edits, and fewer than a third of its length + 1), closest first, then by name. */
export function closeMatches(typed: string, known: Iterable<string>): string[] {
  const limit = Math.min(2, Math.floor(typed.length / 3) + 1);
  return [...new Set(known)]
    .filter((k) => k !== typed)
    .map((k) => ({ k, d: editDistance(typed.toLowerCase(), k.toLowerCase()) }))
    .filter((x) => x.d <= limit)
    .sort((x, y) => x.d - y.d || (x.k < y.k ? -1 : x.k > y.k ? 1 : 0))
    .map((x) => x.k);
}

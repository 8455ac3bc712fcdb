/**
 * A unified diff of two small texts (for `mkimg diff` on a changed config
 * file): the lines of the longest common subsequence stay, the rest are - and
 * +, in hunks with `context` lines around them. Quadratic in the line counts,
 * so callers bound the input (unifiedDiff returns undefined past MAX_CELLS).
 */

const MAX_CELLS = 4_000_000;

/** The texts as lines, or undefined when either is not UTF-8 text (a NUL byte, an invalid sequence). */
export function asTextLines(bytes: Buffer): string[] | undefined {
  if (bytes.includes(0)) return undefined;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

type Op = [' ' | '-' | '+', string];

function edits(a: string[], b: string[]): Op[] {
  // lcs[i][j]: length of the longest common subsequence of a[i..] and b[j..]
  const lcs = Array.from({ length: a.length + 1 }, () => new Uint32Array(b.length + 1));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--)
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  }
  const ops: Op[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      ops.push([' ', a[i++]]);
      j++;
    } else if (i < a.length && (j === b.length || lcs[i + 1][j] >= lcs[i][j + 1])) ops.push(['-', a[i++]]);
    else ops.push(['+', b[j++]]);
  }
  return ops;
}

/** `--- a/NAME`, `+++ b/NAME`, then `@@ -l,n +l,n @@` hunks; undefined when the texts are too large to compare here. */
export function unifiedDiff(name: string, a: string[], b: string[], context = 3): string[] | undefined {
  if ((a.length + 1) * (b.length + 1) > MAX_CELLS) return undefined;
  const ops = edits(a, b);
  const changed = ops.map((o, k) => (o[0] !== ' ' ? k : -1)).filter((k) => k >= 0);
  if (changed.length === 0) return [];
  const out = [`--- a/${name}`, `+++ b/${name}`];
  // line numbers (1-based) in a and b at the start of each op
  const at: [number, number][] = [];
  let la = 1;
  let lb = 1;
  for (const o of ops) {
    at.push([la, lb]);
    if (o[0] !== '+') la++;
    if (o[0] !== '-') lb++;
  }
  let k = 0;
  while (k < changed.length) {
    const start = Math.max(0, changed[k] - context);
    let end = changed[k];
    while (k + 1 < changed.length && changed[k + 1] - end <= 2 * context) end = changed[++k];
    k++;
    const stop = Math.min(ops.length, end + context + 1);
    const hunk = ops.slice(start, stop);
    const na = hunk.filter((o) => o[0] !== '+').length;
    const nb = hunk.filter((o) => o[0] !== '-').length;
    const [sa, sb] = at[start];
    out.push(`@@ -${na ? sa : sa - 1},${na} +${nb ? sb : sb - 1},${nb} @@`);
    for (const [op, line] of hunk) out.push(op + line);
  }
  return out;
}

/**
 * A unified diff of two small texts for `mkimg diff` on a changed text file
 * (a config file, the SBOM), on the bounded line diff of line-diff.ts. Lines
 * are shortened for the terminal: a one-line JSON document differs in one
 * line, and printing it whole twice says nothing.
 */
import { lineHunks } from './line-diff.js';

/** Lines longer than this are cut in the output. */
const MAX_LINE = 200;

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

function cut(line: string): string {
  return line.length <= MAX_LINE + 1
    ? line
    : `${line.slice(0, MAX_LINE + 1)}… (${line.length - MAX_LINE - 1} more characters)`;
}

/** `--- a/NAME`, `+++ b/NAME`, then `@@ -l,n +l,n @@` hunks; undefined when the texts are too different to show. */
export function unifiedDiff(name: string, a: string[], b: string[], context = 3): string[] | undefined {
  const hunks = lineHunks(a, b, context);
  if (!hunks) return undefined;
  if (hunks.length === 0) return [];
  const out = [`--- a/${name}`, `+++ b/${name}`];
  for (const h of hunks) {
    const na = h.lines.filter((l) => l[0] !== '+').length;
    const nb = h.lines.filter((l) => l[0] !== '-').length;
    out.push(`@@ -${na ? h.a : h.a - 1},${na} +${nb ? h.b : h.b - 1},${nb} @@`);
    for (const l of h.lines) out.push(cut(l));
  }
  return out;
}

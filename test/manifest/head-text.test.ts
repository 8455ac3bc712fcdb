/**
 * A manifest's text before its lock: section read without the YAML library:
 * for every text it accepts, its value is the library's and each node's line
 * is where the library places it; anything outside the plain subset is left
 * to the library (undefined). Checked on the shipped examples, on cases
 * written by hand, and on thousands of generated texts.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { isNode, LineCounter, parseDocument } from 'yaml';
import { readPlainHead } from '../../src/manifest/head-text.js';
import { readWrittenLock } from '../../src/manifest/lock-text.js';
import { prng } from '../helpers/prng.js';

const examples = join(import.meta.dirname, '../../examples');

/** The library's reading: the value, or undefined when it reports an error. */
function library(text: string): unknown {
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0 || doc.warnings.length > 0) return undefined;
  return doc.toJS();
}

/** The library's line for the node at a path. */
function libraryLine(text: string, path: (string | number)[]): number | undefined {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc });
  const node = doc.getIn(path, true);
  return isNode(node) && node.range ? lc.linePos(node.range[0]).line : undefined;
}

function agrees(text: string): boolean {
  const fast = readPlainHead(text);
  if (fast === undefined) return false;
  expect(fast.raw, text).toEqual(library(text));
  return true;
}

describe('the plain head of a manifest', () => {
  test("every shipped example's head but nginx's (a block scalar) is read as the library reads it, lines included", () => {
    const taken: string[] = [];
    for (const ex of readdirSync(examples).filter((e) => existsSync(join(examples, e, 'manifest.yaml')))) {
      const text = readFileSync(join(examples, ex, 'manifest.yaml'), 'utf8');
      const head = readWrittenLock(text)!.head;
      const fast = readPlainHead(head);
      if (fast === undefined) continue;
      taken.push(ex);
      expect(fast.raw).toEqual(library(head));
      const pkgs = (fast.raw.packages ?? []) as unknown[];
      for (let i = 0; i < pkgs.length; i++)
        expect(fast.lineAt(['packages', i])).toBe(libraryLine(head, ['packages', i]));
    }
    expect(taken.sort()).toEqual(['c-app', 'python', 'static']);
  });

  test('accepts the plain subset, as the library reads it', () => {
    const accepted = [
      'a: b\n',
      "a: 1\nb: true\nc: false\nd: \"1.0\"\ne: 'it''s'\n",
      '# top\na: b # trailing\n\nc:\n  - x\n  - "y z"\n  # between\n  - {k: v, n: 2, f: [1, 2, ], e: {}}\n',
      'env:\n  LANG: C.UTF-8\n  org.example/x: a,b[c]{d}\nlabels: {}\n',
      'files:\n  - src: app/\n    dest: /app\n  - src: x#y\n    dest: /y\n',
      'args: ["/bin/sh", "-c", "echo a: b # c"]\nexpect: { exitCode: 0, stdout: { regex: "ok$" } }\n',
      'a:\n    - b: c\n      d:\n        - e\n',
      'k: v  \n',
      'a: "x\\ny\\t\\"q\\" \\\\ \\u00e9\\x41\\/"\n',
    ];
    for (const t of accepted) expect(agrees(t), t).toBe(true);
  });

  test('leaves everything else to the library', () => {
    const refused = [
      'a: null\n',
      'a:\n',
      'a: 1.5\n',
      'a: 0755\n',
      'a: True\n',
      'a: ~\n',
      'a: &x b\nc: *x\n',
      'a: !!str b\n',
      'a: |\n  text\n',
      'a: >-\n  text\n',
      'a: "x\\ay"\n',
      'a: "\\ud800"\n',
      'a: b\n  c\n',
      'a: "b\n  c"\n',
      'a:\n- b\n',
      'a: b\na: c\n',
      '\ta: b\n',
      'a: [b,\n  c]\n',
      '- a\n',
      '---\na: b\n',
      '"a": b\n',
      'a: b: c\n',
      'a: -b\n',
      'a: @b\n',
      '? a\n: b\n',
      'a: [b: c]\n',
      '__proto__: x\n',
    ];
    for (const t of refused) expect(readPlainHead(t), t).toBeUndefined();
  });

  test('generated texts: whatever it accepts, it reads as the library does', () => {
    const rnd = prng(20261205);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    const words = [
      'tab\\t',
      'nl\\n',
      'q\\"',
      'u\\u00e9',
      'x\\x41',
      'bad\\q',
      'a',
      'b1',
      'x.y',
      'p/q',
      'true',
      'false',
      '12',
      '0',
      '007',
      '1.5',
      'null',
      '~',
      'yes',
      'No',
      'a b',
      'a#b',
      'a #c',
      'a,b',
      '[x]',
      'k: v',
      '-x',
      'x:',
      'é',
      '',
    ];
    const scalar = (): string => {
      const w = pick(words);
      const r = rnd();
      if (r < 0.15) return JSON.stringify(w);
      if (r < 0.2) return `"${w}"`;
      if (r < 0.3) return `'${w.replace(/'/g, "''")}'`;
      return w;
    };
    const flow = (depth: number): string => {
      const r = rnd();
      if (depth > 2 || r < 0.5) return scalar();
      const n = Math.floor(rnd() * 3);
      if (r < 0.75) return `[${Array.from({ length: n }, () => flow(depth + 1)).join(pick([', ', ',', ' , ']))}]`;
      return `{${Array.from({ length: n }, (_, i) => `${pick(['k', 'v', 'k'])}${i}: ${flow(depth + 1)}`).join(', ')}}`;
    };
    const blockLines = (indent: number, depth: number): string[] => {
      const pad = ' '.repeat(indent);
      const out: string[] = [];
      const seq = depth > 0 && rnd() < 0.4;
      const n = 1 + Math.floor(rnd() * 3);
      for (let i = 0; i < n; i++) {
        if (rnd() < 0.1) out.push(`${pad}# comment ${i}`);
        const key = seq ? '- ' : `${pick(['a', 'b', 'c', 'd.e', 'f'])}${i}: `;
        const r = rnd();
        if (depth < 3 && r < 0.3) {
          out.push(`${pad}${key.trimEnd()}`);
          out.push(...blockLines(indent + pick([2, 4]), depth + 1));
        } else if (seq && depth < 3 && r < 0.45) {
          const inner = blockLines(indent + 2, depth + 1).filter((l) => !l.trim().startsWith('#'));
          if (inner.length && !inner[0]!.trim().startsWith('- '))
            out.push(`${pad}- ${inner[0]!.trimStart()}`, ...inner.slice(1));
          else out.push(`${pad}- x`);
        } else out.push(`${pad}${key}${flow(0)}${rnd() < 0.1 ? ' # note' : ''}`);
      }
      return out;
    };
    let accepted = 0;
    for (let i = 0; i < 3000; i++) {
      const text = `${blockLines(0, 0).join('\n')}\n`;
      const fast = readPlainHead(text);
      if (fast === undefined) continue;
      accepted++;
      expect(fast.raw, text).toEqual(library(text));
    }
    expect(accepted).toBeGreaterThan(300);
  });
});

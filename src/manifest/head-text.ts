/**
 * The part of a manifest before its lock: section, read without the YAML
 * library when it keeps to the plain subset people write: block mappings and
 * sequences, one-line flow collections, plain words, quoted strings (the
 * common escapes), comments. The library, cold in a fresh process, spends ~40 ms on
 * even a short text; `mkimg lock` and `mkimg build` each read the manifest.
 *
 * Anything outside the subset (a tab, an anchor, a tag, a block scalar, a
 * plain scalar over several lines, an unusual escape, a float, a duplicate key, …)
 * returns undefined and the caller uses the library. Inside it, a word is a
 * string unless it is `true`, `false` or a decimal integer; any other word YAML
 * 1.2's core schema reads as something else returns undefined. The tests read
 * every manifest of the repository both ways and compare.
 */

type Value = string | number | boolean | Value[] | { [k: string]: Value };

/** What the reader gives: the value, and the line (1-based) where the node at a path starts. */
export interface PlainHead {
  raw: { [k: string]: Value };
  lineAt(path: (string | number)[]): number | undefined;
}

class Bail extends Error {}

/** Words YAML 1.2's core schema reads as something other than a string (as lock-text.ts, plus empty). */
const NOT_A_STRING =
  /^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+|[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)|null|Null|NULL|true|True|TRUE|false|False|FALSE|~|)$/;
const DECIMAL = /^(?:0|[1-9][0-9]{0,14})$/;
const KEY = /^[A-Za-z_][A-Za-z0-9_.\-/]*$/;
/** Characters that may not start a plain scalar here (indicators), or that this reader leaves to the library. */
const BAD_FIRST = /^[-?:,[\]{}#&*!|>'"%@`\s]/;

function plainScalar(word: string): Value {
  if (word === 'true') return true;
  if (word === 'false') return false;
  if (DECIMAL.test(word)) return Number(word);
  if (NOT_A_STRING.test(word) || BAD_FIRST.test(word) || /\s$/.test(word)) throw new Bail();
  return word;
}

/** A quoted scalar starting at s[i]: its value and the index after the closing quote. */
function quoted(s: string, i: number): [string, number] {
  const q = s[i]!;
  let out = '';
  let j = i + 1;
  for (;;) {
    const c = s[j];
    if (c === undefined || c === '\t') throw new Bail();
    if (c === '\\' && q === '"') {
      const [ch, len] = escape(s, j + 1);
      out += ch;
      j += 1 + len;
      continue;
    }
    if (c === q) {
      if (q === "'" && s[j + 1] === "'") {
        out += "'";
        j += 2;
        continue;
      }
      return [out, j + 1];
    }
    out += c;
    j++;
  }
}

/** The escapes of a double-quoted scalar this reader takes (others are left to the library): [text, length]. */
const ESCAPES: Record<string, string> = {
  n: '\n',
  t: '\t',
  r: '\r',
  '0': '\0',
  '\\': '\\',
  '"': '"',
  '/': '/',
  ' ': ' ',
};
function escape(s: string, i: number): [string, number] {
  const c = s[i];
  if (c !== undefined && Object.hasOwn(ESCAPES, c)) return [ESCAPES[c]!, 1];
  const hex = c === 'x' ? 2 : c === 'u' ? 4 : 0;
  const digits = s.slice(i + 1, i + 1 + hex);
  if (hex === 0 || !new RegExp(`^[0-9a-fA-F]{${hex}}$`).test(digits)) throw new Bail();
  const code = Number.parseInt(digits, 16);
  if (code >= 0xd800 && code <= 0xdfff) throw new Bail();
  return [String.fromCharCode(code), 1 + hex];
}

/** The rest of a line after a node: nothing, or a comment. */
function endOfLine(s: string, i: number): void {
  const rest = s.slice(i);
  if (rest.trim() === '' || /^\s+#/.test(rest)) return;
  throw new Bail();
}

/** A flow collection or scalar inside a flow collection, from s[i]: [value, next index]. */
function flowNode(s: string, i: number): [Value, number] {
  while (s[i] === ' ') i++;
  const c = s[i];
  if (c === '[') {
    const out: Value[] = [];
    i++;
    for (;;) {
      while (s[i] === ' ') i++;
      if (s[i] === ']') return [out, i + 1];
      const [v, j] = flowNode(s, i);
      out.push(v);
      i = j;
      while (s[i] === ' ') i++;
      if (s[i] === ',') i++;
      else if (s[i] !== ']') throw new Bail();
    }
  }
  if (c === '{') {
    const out: { [k: string]: Value } = {};
    i++;
    for (;;) {
      while (s[i] === ' ') i++;
      if (s[i] === '}') return [out, i + 1];
      const m = /^([A-Za-z_][A-Za-z0-9_.\-/]*): /.exec(s.slice(i));
      if (!m || Object.hasOwn(out, m[1]!)) throw new Bail();
      const [v, j] = flowNode(s, i + m[0].length);
      out[m[1]!] = v;
      i = j;
      while (s[i] === ' ') i++;
      if (s[i] === ',') i++;
      else if (s[i] !== '}') throw new Bail();
    }
  }
  if (c === '"' || c === "'") return quoted(s, i);
  const m = /^[^,[\]{}#]*/.exec(s.slice(i))!;
  const word = m[0].replace(/ +$/, '');
  if (word.includes(': ') || word.endsWith(':')) throw new Bail();
  return [plainScalar(word), i + word.length];
}

/** A scalar or flow collection that is the rest of a block line (after "key: " or "- "). */
function inlineValue(s: string): Value {
  if (s[0] === '[' || s[0] === '{' || s[0] === '"' || s[0] === "'") {
    const [v, j] = flowNode(s, 0);
    endOfLine(s, j);
    return v;
  }
  const hash = s.search(/\s#/);
  const word = (hash < 0 ? s : s.slice(0, hash)).replace(/ +$/, '');
  if (word.includes(': ') || word.endsWith(':') || word.includes(' #')) throw new Bail();
  return plainScalar(word);
}

export function readPlainHead(text: string): PlainHead | undefined {
  try {
    return parse(text);
  } catch (e) {
    if (e instanceof Bail || e instanceof RangeError) return undefined;
    throw e;
  }
}

function parse(text: string): PlainHead {
  if (text.includes('\t') || text.includes('\r')) throw new Bail();
  // The lines that hold content: [line number, indent, text without indent].
  const lines: [number, number, string][] = [];
  text.split('\n').forEach((l, n) => {
    const t = l.trimStart();
    if (t === '' || t.startsWith('#')) return;
    if (t.startsWith('---') || t.startsWith('...') || t.startsWith('%')) throw new Bail();
    lines.push([n + 1, l.length - t.length, t.replace(/\s+$/, '')]);
  });
  const positions = new Map<string, number>();
  const at = (path: (string | number)[], line: number) => positions.set(path.join('\0'), line);
  let i = 0;

  // A block node whose first line is lines[i], at exactly `indent`.
  const block = (indent: number, path: (string | number)[]): Value => {
    const [, ind, t] = lines[i] ?? [0, -1, ''];
    if (ind !== indent) throw new Bail();
    return t === '-' || t.startsWith('- ') ? sequence(indent, path) : mapping(indent, path, undefined);
  };
  // The value after "key:" or "- " on line `line`: inline, or the block below (deeper than `indent`).
  const valueAfter = (rest: string, line: number, indent: number, path: (string | number)[]): Value => {
    if (rest !== '' && !rest.startsWith('#')) {
      at(path, line);
      return inlineValue(rest);
    }
    const next = lines[i];
    if (!next || next[1] <= indent) throw new Bail(); // an empty value (null): left to the library
    at(path, next[0]);
    return block(next[1], path);
  };
  const sequence = (indent: number, path: (string | number)[]): Value[] => {
    const out: Value[] = [];
    while (i < lines.length && lines[i]![1] === indent && (lines[i]![2] === '-' || lines[i]![2].startsWith('- '))) {
      const [line, , t] = lines[i]!;
      const rest = t.slice(1).trimStart();
      const here = [...path, out.length];
      if (/^[A-Za-z_][A-Za-z0-9_.\-/]*:( |$)/.test(rest)) {
        // "- key: value": a mapping whose first key sits after the dash.
        const col = indent + (t.length - rest.length);
        lines[i] = [line, col, rest];
        at(here, line);
        out.push(mapping(col, here, line));
      } else {
        i++;
        out.push(valueAfter(rest, line, indent, here));
      }
    }
    return out;
  };
  const mapping = (
    indent: number,
    path: (string | number)[],
    startLine: number | undefined,
  ): { [k: string]: Value } => {
    const out: { [k: string]: Value } = {};
    if (startLine === undefined && lines[i]) at(path, lines[i]![0]);
    while (i < lines.length && lines[i]![1] === indent) {
      const [line, , t] = lines[i]!;
      const m = /^([A-Za-z_][A-Za-z0-9_.\-/]*):(?: +(.*))?$/.exec(t);
      if (!m || !KEY.test(m[1]!) || Object.hasOwn(out, m[1]!) || m[1] === '__proto__') throw new Bail();
      i++;
      out[m[1]!] = valueAfter(m[2] ?? '', line, indent, [...path, m[1]!]);
    }
    return out;
  };

  if (lines.length === 0 || lines[0]![1] !== 0) throw new Bail();
  const raw = mapping(0, [], undefined);
  if (i !== lines.length) throw new Bail();
  return {
    raw,
    lineAt(path) {
      for (let n = path.length; n >= 0; n--) {
        const line = positions.get(path.slice(0, n).join('\0'));
        if (line !== undefined) return line;
      }
      return undefined;
    },
  };
}

/**
 * The lock: section as `mkimg lock` writes it, read and written without the
 * YAML library. The section is most of a manifest's bytes, and the library,
 * cold in a fresh process, spends about 0.1 s on it: twice per edit–build
 * loop (lock, then build). Only one exact shape is taken: the section last
 * in the file, block mappings and sequences indented two spaces, every
 * scalar a plain word that YAML reads as the same string (or a decimal
 * integer). For that shape this reading and the library's agree by
 * construction; anything else (a comment, a quote, a float-looking word,
 * another indentation) returns undefined and the caller uses the library.
 */

/** A plain scalar YAML reads as this very string: no indicator first, no space, no ": ", no " #". */
const PLAIN_WORD = /^[A-Za-z0-9_/+~][A-Za-z0-9_/+~.:=-]*$/;
/** Words YAML 1.2's core schema reads as something else (or that this reader leaves to the library). */
const NOT_A_STRING =
  /^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+|[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)|null|Null|NULL|true|True|TRUE|false|False|FALSE|~)$/;
const DECIMAL = /^(?:0|[1-9][0-9]{0,14})$/;
const KEY = /^[A-Za-z][A-Za-z0-9]*$/;

type Value = string | number | Value[] | { [k: string]: Value };

function scalar(word: string): string | number | undefined {
  if (DECIMAL.test(word)) return Number(word);
  if (!PLAIN_WORD.test(word) || word.endsWith(':') || NOT_A_STRING.test(word)) return undefined;
  return word;
}

class Bail extends Error {}

/**
 * The manifest split into the text before its lock: section and the section's value, when the
 * section is last and in the written shape; undefined otherwise (then parse the whole text).
 */
export function readWrittenLock(text: string): { head: string; lock: Record<string, Value> } | undefined {
  const at = text.startsWith('lock:\n') ? 0 : text.lastIndexOf('\nlock:\n') + 1;
  if (at === 0 && !text.startsWith('lock:\n')) return undefined;
  if (!text.endsWith('\n')) return undefined;
  const lines = text.slice(at + 'lock:\n'.length, -1).split('\n');
  let i = 0;
  const indentOf = (l: string) => l.length - l.trimStart().length;

  // One node at `indent`: a block sequence ("- " items) or a block mapping.
  const block = (indent: number): Value => {
    const l = lines[i];
    if (l === undefined || indentOf(l) !== indent) throw new Bail();
    return l.startsWith('- ', indent) ? sequence(indent) : mapping(indent, false);
  };
  // Pairs whose keys stand at `indent`; the first one after a "- " when `item`.
  const mapping = (indent: number, item: boolean): { [k: string]: Value } => {
    const out: { [k: string]: Value } = {};
    let first = item;
    while (i < lines.length) {
      const l = lines[i]!;
      if (!first && (indentOf(l) !== indent || l.startsWith('- ', indent))) break;
      first = false;
      const m = /^([A-Za-z0-9]+):(?: (.*))?$/.exec(l.slice(indent));
      if (!m || !KEY.test(m[1]!) || Object.hasOwn(out, m[1]!)) throw new Bail();
      i++;
      if (m[2] === undefined) out[m[1]!] = block(indent + 2);
      else if (m[2] === '[]') out[m[1]!] = [];
      else if (m[2] === '{}') out[m[1]!] = {};
      else {
        const v = scalar(m[2]);
        if (v === undefined) throw new Bail();
        out[m[1]!] = v;
      }
      if (i < lines.length && indentOf(lines[i]!) > indent) throw new Bail();
    }
    return out;
  };
  const sequence = (indent: number): Value[] => {
    const out: Value[] = [];
    while (i < lines.length && indentOf(lines[i]!) === indent && lines[i]!.startsWith('- ', indent)) {
      out.push(mapping(indent + 2, true));
    }
    return out;
  };

  try {
    const lock = mapping(2, false);
    if (i !== lines.length || lines.some((l) => l.includes('\t') || l.endsWith(' '))) return undefined;
    return { head: text.slice(0, at), lock };
  } catch (e) {
    if (e instanceof Bail) return undefined;
    throw e;
  }
}

/**
 * The lock: section text for a normalized lock value (lock/write.ts), in the shape above; undefined
 * when a value is not a plain word (then the YAML library writes it, quoting as it must).
 */
export function writeLockText(lock: Record<string, unknown>): string | undefined {
  const out: string[] = ['lock:'];
  const word = (v: unknown): string | undefined => {
    if (typeof v === 'number')
      return Number.isSafeInteger(v) && v >= 0 && DECIMAL.test(String(v)) ? String(v) : undefined;
    return typeof v === 'string' && scalar(v) === v ? v : undefined;
  };
  const node = (v: unknown, indent: number, first: string | undefined): boolean => {
    const pad = ' '.repeat(indent);
    if (Array.isArray(v)) {
      for (const item of v) {
        if (item === null || typeof item !== 'object' || Array.isArray(item) || Object.keys(item).length === 0)
          return false;
        if (!pairs(item as Record<string, unknown>, indent + 2, `${pad}- `)) return false;
      }
      return true;
    }
    if (v !== null && typeof v === 'object') return pairs(v as Record<string, unknown>, indent, first);
    return false;
  };
  const pairs = (m: Record<string, unknown>, indent: number, first: string | undefined): boolean => {
    let lead = first;
    for (const [k, v] of Object.entries(m)) {
      if (!KEY.test(k) || v === undefined) return false;
      const prefix = lead ?? ' '.repeat(indent);
      lead = undefined;
      if (Array.isArray(v) && v.length === 0) out.push(`${prefix}${k}: []`);
      else if (v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0)
        out.push(`${prefix}${k}: {}`);
      else if (v !== null && typeof v === 'object') {
        out.push(`${prefix}${k}:`);
        if (!node(v, indent + 2, undefined)) return false;
      } else {
        const w = word(v);
        if (w === undefined) return false;
        out.push(`${prefix}${k}: ${w}`);
      }
    }
    return true;
  };
  if (!pairs(lock, 2, undefined)) return undefined;
  return `${out.join('\n')}\n`;
}

/**
 * Canonical JSON: object keys sorted by UTF-16 code unit order (as JSON.stringify
 * would see them, and as Go's encoding/json sorts map keys for ASCII keys), no
 * whitespace, no trailing newline. Every JSON blob mkimg writes into an image
 * goes through here, so its bytes are a function of its value alone.
 *
 * Members whose value is undefined are left out; undefined array elements
 * become null; non-finite numbers, functions, symbols and bigints throw.
 * Objects are read through Object.keys (own enumerable string keys), whatever
 * their prototype: toJSON methods are not called.
 *
 * How: the value is first rewritten into a tree that JSON.stringify prints
 * canonically (plain objects whose keys were inserted in sorted order,
 * sub-trees already in that form are shared, not copied), then printed by
 * JSON.stringify itself, which is much faster than concatenating strings in
 * JavaScript. A JavaScript object cannot keep integer-like keys ("0", "10")
 * in insertion order, nor hold an own "__proto__" by assignment: a value
 * with such a key anywhere is printed by the plain recursive serializer
 * instead (same bytes, slower).
 */
export function canonicalJson(value: unknown): string {
  let tree: unknown;
  try {
    tree = normalize(value);
  } catch (e) {
    if (e === FALLBACK) return serialize(value);
    throw e;
  }
  return JSON.stringify(tree);
}

export function canonicalJsonBytes(value: unknown): Buffer {
  const s = canonicalJson(value);
  // ASCII text (most documents) is the same in latin1, which Node copies about twice as fast as it encodes UTF-8.
  return NON_ASCII.test(s) ? Buffer.from(s, 'utf8') : Buffer.from(s, 'latin1');
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: the range is every byte outside ASCII, on purpose.
const NON_ASCII = /[^\x00-\x7f]/;

/** Thrown by normalize() for a value JSON.stringify cannot print in canonical order. */
const FALLBACK = Symbol('canonical-json fallback');

function compareUtf16(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function nonFinite(v: number): never {
  throw new TypeError(`canonical JSON: non-finite number ${v}`);
}

function cannotEncode(v: unknown): never {
  throw new TypeError(`canonical JSON: cannot encode ${typeof v}`);
}

/**
 * Keys an object would not keep in insertion order (array indices: digits
 * without a leading zero; flagged for any length, which only costs speed), or
 * that assignment would not create as an own property ("__proto__").
 */
function unorderableKey(k: string): boolean {
  const c = k.charCodeAt(0);
  if (c >= 48 && c <= 57) return c !== 48 || k.length === 1 ? /^[0-9]+$/.test(k) : false;
  return c === 95 && k === '__proto__';
}

/**
 * The value, or a copy of it, in a form JSON.stringify prints canonically.
 * Returns `v` itself when it is already in that form. Traverses in canonical
 * order, so the first error thrown is the one serialize() would throw.
 */
function normalize(v: unknown): unknown {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return v;
    case 'number':
      return Number.isFinite(v) ? v : nonFinite(v);
    case 'object': {
      if (v === null) return v;
      if (Array.isArray(v)) {
        // A plain array with only canonical elements is printed as it is.
        let out: unknown[] | undefined =
          Object.getPrototypeOf(v) === Array.prototype && (v as { toJSON?: unknown }).toJSON === undefined
            ? undefined
            : [];
        const n = v.length;
        for (let i = 0; i < n; i++) {
          const x: unknown = v[i];
          const y = x === undefined ? null : normalize(x);
          if (out === undefined && y !== x) out = v.slice(0, i);
          if (out !== undefined) out.push(y);
        }
        return out ?? v;
      }
      const obj = v as Record<string, unknown>;
      const proto = Object.getPrototypeOf(obj);
      const keys = Object.keys(obj);
      let same = proto === Object.prototype || proto === null;
      for (let i = 1; i < keys.length; i++) {
        if (keys[i - 1]! > keys[i]!) {
          keys.sort(compareUtf16);
          same = false;
          break;
        }
      }
      const vals: unknown[] = new Array(keys.length);
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i]!;
        if (unorderableKey(k)) throw FALLBACK;
        const x = obj[k];
        const y = x === undefined ? undefined : normalize(x);
        if (y !== x) same = false;
        vals[i] = y;
      }
      // JSON.stringify leaves out undefined members itself; it would call a
      // (non-enumerable, so unseen here) toJSON, which the format ignores.
      if (same && obj.toJSON === undefined) return obj;
      const out: Record<string, unknown> = {};
      for (let i = 0; i < keys.length; i++) if (vals[i] !== undefined) out[keys[i]!] = vals[i];
      return out;
    }
    default:
      return cannotEncode(v);
  }
}

/** The plain recursive serializer: the definition of the format, used for values normalize() cannot take. */
function serialize(v: unknown): string {
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v);
    case 'number':
      return Number.isFinite(v) ? JSON.stringify(v) : nonFinite(v);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'object': {
      if (v === null) return 'null';
      if (Array.isArray(v)) {
        let out = '[';
        for (let i = 0; i < v.length; i++) {
          const x: unknown = v[i];
          out += (i === 0 ? '' : ',') + (x === undefined ? 'null' : serialize(x));
        }
        return out + ']';
      }
      const obj = v as Record<string, unknown>;
      const keys = Object.keys(obj).sort(compareUtf16);
      let out = '{';
      for (const k of keys) {
        const x = obj[k];
        if (x === undefined) continue;
        out += (out.length === 1 ? '' : ',') + JSON.stringify(k) + ':' + serialize(x);
      }
      return out + '}';
    }
    default:
      return cannotEncode(v);
  }
}

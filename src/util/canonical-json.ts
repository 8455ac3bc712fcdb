/**
 * Canonical JSON: object keys sorted by UTF-16 code unit order (as JSON.stringify
 * would see them, and as Go's encoding/json sorts map keys for ASCII keys), no
 * whitespace, no trailing newline. Every JSON blob mkimg writes into an image
 * goes through here, so its bytes are a function of its value alone.
 */
export function canonicalJson(value: unknown): string {
  return serialize(value);
}

function serialize(v: unknown): string {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v);
    case 'number':
      if (!Number.isFinite(v)) throw new TypeError(`canonical JSON: non-finite number ${v}`);
      return JSON.stringify(v);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'object': {
      if (Array.isArray(v)) return '[' + v.map((x) => (x === undefined ? 'null' : serialize(x))).join(',') + ']';
      const obj = v as Record<string, unknown>;
      const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort(compareUtf16);
      return '{' + keys.map((k) => JSON.stringify(k) + ':' + serialize(obj[k])).join(',') + '}';
    }
    default:
      throw new TypeError(`canonical JSON: cannot encode ${typeof v}`);
  }
}

function compareUtf16(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function canonicalJsonBytes(value: unknown): Buffer {
  return Buffer.from(canonicalJson(value), 'utf8');
}

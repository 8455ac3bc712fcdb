/**
 * deb822 control data (Packages, Release, debian/control): stanzas separated
 * by blank lines, `Field: value` lines, continuation lines starting with a
 * space or tab. Field names match case-insensitively and keep their spelling.
 */

export class Stanza {
  /** Field names in the order written, spelled as written. */
  readonly names: string[] = [];
  private readonly values = new Map<string, string>();
  private readonly spelled = new Map<string, string>();

  set(name: string, value: string): void {
    const k = name.toLowerCase();
    if (!this.values.has(k)) this.names.push(name);
    this.values.set(k, value);
    this.spelled.set(k, name);
  }

  get(name: string): string | undefined {
    return this.values.get(name.toLowerCase());
  }

  has(name: string): boolean {
    return this.values.has(name.toLowerCase());
  }

  /** The field name as written in the source. */
  spelling(name: string): string | undefined {
    return this.spelled.get(name.toLowerCase());
  }

  toObject(): Record<string, string> {
    const o: Record<string, string> = {};
    for (const n of this.names) o[n] = this.values.get(n.toLowerCase())!;
    return o;
  }
}

/**
 * Parse deb822 text into stanzas. Values are trimmed of the leading space after
 * the colon; continuation lines are kept (joined with "\n", leading space
 * removed, a lone "." meaning an empty line). Lines starting with "#" are comments.
 */
export function parseDeb822(text: string): Stanza[] {
  const out: Stanza[] = [];
  let cur: Stanza | null = null;
  let lastName: string | null = null;
  let lastValue = '';
  const flush = () => {
    if (cur && lastName !== null) cur.set(lastName, lastValue);
    lastName = null;
  };
  const lines = text.split('\n');
  for (let raw of lines) {
    if (raw.endsWith('\r')) raw = raw.slice(0, -1);
    if (raw.trim() === '') {
      flush();
      if (cur && cur.names.length) out.push(cur);
      cur = null;
      continue;
    }
    if (raw.startsWith('#')) continue;
    const c0 = raw.charCodeAt(0);
    if (c0 === 32 || c0 === 9) {
      if (lastName === null) throw new SyntaxError(`deb822: continuation line without a field: ${JSON.stringify(raw)}`);
      const t = raw.slice(1);
      lastValue += '\n' + (t.trim() === '.' ? '' : t);
      continue;
    }
    const colon = raw.indexOf(':');
    if (colon <= 0) throw new SyntaxError(`deb822: expected "Field: value", got ${JSON.stringify(raw)}`);
    flush();
    if (!cur) cur = new Stanza();
    lastName = raw.slice(0, colon);
    lastValue = raw.slice(colon + 1).trim();
  }
  flush();
  if (cur && cur.names.length) out.push(cur);
  return out;
}

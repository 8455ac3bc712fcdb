/**
 * Package relationship fields (Depends, Pre-Depends, Provides, Conflicts, Breaks):
 * a comma-separated list of alternatives groups `a | b`, each item
 * `name[:archqual] [(op version)] [[arch ...]] [<profile ...>]`.
 * Architecture restrictions are applied for the target architecture;
 * build profiles are ignored (binary package fields do not use them).
 */
import type { VersionOp } from './version.js';

export interface Relation {
  name: string;
  /** `any`, `native`, or an architecture name, when written as `name:qual`. */
  archQualifier?: string;
  op?: VersionOp;
  version?: string;
  /** `[amd64 !i386]` as written (empty when absent). */
  archRestrictions: string[];
}

/** AND of OR groups. */
export type RelationList = Relation[][];

const ITEM =
  /^([a-zA-Z0-9][a-zA-Z0-9+.-]*)(?::([a-zA-Z0-9-]+))?\s*(?:\(\s*(<<|<=|>=|>>|=|<|>)\s*([^)\s]+)\s*\))?\s*(?:\[([^\]]*)\])?\s*(?:<.*>)?\s*$/;

export function parseRelation(text: string): Relation {
  const t = text.trim();
  const m = ITEM.exec(t);
  if (!m) throw new SyntaxError(`cannot parse package relation ${JSON.stringify(t)}`);
  const r: Relation = { name: m[1]!, archRestrictions: m[5] ? m[5].trim().split(/\s+/).filter(Boolean) : [] };
  if (m[2]) r.archQualifier = m[2];
  if (m[3]) {
    // obsolete < and > mean <= and >=
    r.op = m[3] === '<' ? '<=' : m[3] === '>' ? '>=' : (m[3] as VersionOp);
    r.version = m[4]!;
  }
  return r;
}

/** Parse a whole field. Returns [] for undefined/empty. */
export function parseRelations(field: string | undefined): RelationList {
  if (!field) return [];
  const out: RelationList = [];
  for (const group of field.split(',')) {
    if (group.trim() === '') continue;
    out.push(group.split('|').map(parseRelation));
  }
  return out;
}

/** Does an `[arch ...]` restriction list include `arch`? (Wildcards like linux-any / any-amd64 supported.) */
export function archMatches(restrictions: string[], arch: string): boolean {
  if (restrictions.length === 0) return true;
  const negated = restrictions.every((r) => r.startsWith('!'));
  for (const r of restrictions) {
    const neg = r.startsWith('!');
    const a = neg ? r.slice(1) : r;
    if (archWildcard(a, arch)) return !neg;
  }
  return negated;
}

function archWildcard(pattern: string, arch: string): boolean {
  if (pattern === arch || pattern === 'any') return true;
  // Debian arch tuples, simplified: linux-any, any-<cpu>, <os>-<cpu>
  if (pattern === 'linux-any') return !arch.includes('-');
  if (pattern.startsWith('any-')) return arch === pattern.slice(4);
  if (pattern.startsWith('linux-')) return arch === pattern.slice(6);
  return false;
}

/** Drop relations whose `[arch]` restriction excludes `arch`; drop groups left empty. */
export function forArchitecture(list: RelationList, arch: string): RelationList {
  const out: RelationList = [];
  for (const g of list) {
    const kept = g.filter((r) => archMatches(r.archRestrictions, arch));
    if (kept.length) out.push(kept);
  }
  return out;
}

export function formatRelation(r: Relation): string {
  let s = r.name + (r.archQualifier ? ':' + r.archQualifier : '');
  if (r.op) s += ` (${r.op} ${r.version})`;
  return s;
}

export function formatGroup(g: Relation[]): string {
  return g.map(formatRelation).join(' | ');
}

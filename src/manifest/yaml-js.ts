/**
 * The manifest's YAML document as plain JS, in time linear in the document:
 * duplicate keys are found with one Set per mapping (the yaml library's own
 * check compares every key with every other), aliases are resolved with one
 * pass over the anchors, and an alias yields the same JS value as its anchor
 * (shared, not copied). Before anything is built, the size the document
 * would have with every alias expanded is counted, with each node's size
 * computed once; past MANIFEST_EXPANDED_NODES it is refused, so a "billion
 * laughs" document costs nothing while any number of ordinary aliases works.
 * Nesting deeper than MANIFEST_MAX_DEPTH is refused (no recursion past it).
 */
import { isAlias, isMap, isPair, isScalar, isSeq, visit, type Alias, type Document, type Node } from 'yaml';

/** The most nodes a manifest may have with its aliases expanded (SPEC §4 "Limits"). */
export const MANIFEST_EXPANDED_NODES = 1_000_000;
/** The deepest a manifest's mappings and sequences may nest (SPEC §4 "Limits"). */
export const MANIFEST_MAX_DEPTH = 64;

export class YamlShapeError extends Error {
  constructor(
    message: string,
    readonly offset: number | undefined,
  ) {
    super(message);
  }
}

/** Each alias's anchored node: the last node with that anchor before the alias, in document order (YAML's rule). */
function resolveAliases(doc: Document): Map<Alias, Node> {
  const anchors = new Map<string, Node>();
  const targets = new Map<Alias, Node>();
  visit(doc, {
    Node(_k, node) {
      if (isAlias(node)) {
        const t = anchors.get(node.source);
        if (!t) throw new YamlShapeError(`alias *${node.source} names no anchor before it`, node.range?.[0]);
        targets.set(node, t);
      } else if (node.anchor) {
        anchors.set(node.anchor, node as Node);
      }
    },
  });
  return targets;
}

function childrenOf(node: Node, targets: Map<Alias, Node>): Node[] {
  if (isAlias(node)) return [targets.get(node)!];
  if (isMap(node)) {
    const out: Node[] = [];
    for (const p of node.items) {
      if (p.key && typeof p.key === 'object') out.push(p.key as Node);
      if (p.value && typeof p.value === 'object') out.push(p.value as Node);
    }
    return out;
  }
  if (isSeq(node)) return node.items.filter((x): x is Node => Boolean(x) && typeof x === 'object');
  return [];
}

/** The node count of `root` with aliases expanded, without expanding them (post-order, memoized, iterative). */
function expandedSize(root: Node, targets: Map<Alias, Node>, limit: number): number {
  const size = new Map<Node, number>();
  const onStack = new Set<Node>();
  const stack: Array<{ node: Node; kids: Node[]; i: number; sum: number }> = [];
  const push = (node: Node): void => {
    if (stack.length >= MANIFEST_MAX_DEPTH * 2 + 8)
      throw new YamlShapeError(`the manifest nests deeper than ${MANIFEST_MAX_DEPTH} levels`, node.range?.[0]);
    onStack.add(node);
    stack.push({ node, kids: childrenOf(node, targets), i: 0, sum: 1 });
  };
  push(root);
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    if (top.i < top.kids.length) {
      const kid = top.kids[top.i++]!;
      const known = size.get(kid);
      if (known !== undefined) top.sum += known;
      else if (onStack.has(kid))
        throw new YamlShapeError('an alias refers to a node that contains it (a cycle)', kid.range?.[0]);
      else push(kid);
      continue;
    }
    stack.pop();
    onStack.delete(top.node);
    if (top.sum > limit) {
      throw new YamlShapeError(
        `with its aliases expanded the manifest would have more than ${limit} nodes`,
        top.node.range?.[0],
      );
    }
    size.set(top.node, top.sum);
    if (stack.length) stack[stack.length - 1]!.sum += top.sum;
  }
  return size.get(root)!;
}

export function documentToJS(doc: Document, limit = MANIFEST_EXPANDED_NODES): unknown {
  const root = doc.contents as Node | null;
  if (!root) return null;
  const targets = resolveAliases(doc);
  expandedSize(root, targets, limit);
  const memo = new Map<Node, unknown>();
  const convert = (node: Node | null | undefined, depth: number): unknown => {
    if (node === null || node === undefined) return null;
    if (depth > MANIFEST_MAX_DEPTH)
      throw new YamlShapeError(`the manifest nests deeper than ${MANIFEST_MAX_DEPTH} levels`, node.range?.[0]);
    if (isAlias(node)) return convert(targets.get(node), depth);
    if (memo.has(node)) return memo.get(node);
    let out: unknown;
    if (isScalar(node)) out = node.value;
    else if (isSeq(node)) out = node.items.map((x) => convert(x as Node, depth + 1));
    else if (isMap(node)) {
      const obj: Record<string, unknown> = {};
      const seen = new Set<string>();
      for (const p of node.items) {
        if (!isPair(p)) continue;
        const k = p.key as Node | null;
        const kv = isAlias(k) ? targets.get(k) : k;
        if (kv !== null && kv !== undefined && !isScalar(kv))
          throw new YamlShapeError('a mapping key must be a plain value, not a mapping or a list', k?.range?.[0]);
        const key = kv === null || kv === undefined ? '' : String(kv.value);
        if (seen.has(key)) throw new YamlShapeError(`Map keys must be unique ("${key}" appears twice)`, k?.range?.[0]);
        seen.add(key);
        Object.defineProperty(obj, key, {
          value: convert(p.value as Node, depth + 1),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      out = obj;
    } else out = null;
    memo.set(node, out);
    return out;
  };
  return convert(root, 0);
}

/**
 * No import cycles in src/, static or dynamic: every `import … from`,
 * `export … from` and `import('…')` with a literal relative path is an edge.
 * A cycle makes module order matter and stages depend on each other both
 * ways; this test names it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../helpers/cli.js';

const SRC = join(PROJECT_ROOT, 'src');
const IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"](\.{1,2}\/[^'"]+)['"]/gm;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? sourceFiles(join(dir, d.name)) : d.name.endsWith('.ts') ? [join(dir, d.name)] : [],
  );
}

/** The import graph of the given files: file → the files it imports (relative .js specifiers name .ts files). */
function importGraph(files: string[], read: (f: string) => string): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const f of files) {
    const deps: string[] = [];
    for (const m of read(f).matchAll(IMPORT)) deps.push(resolve(dirname(f), m[1]!.replace(/\.js$/, '.ts')));
    graph.set(
      f,
      deps.filter((d) => files.includes(d)),
    );
  }
  return graph;
}

/** One cycle per strongly connected part of the graph (as a path a → … → a), or none. */
function findCycles(graph: Map<string, string[]>): string[][] {
  const cycles: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string): void => {
    state.set(n, 'open');
    stack.push(n);
    for (const d of graph.get(n) ?? []) {
      if (state.get(d) === 'open') cycles.push([...stack.slice(stack.indexOf(d)), d]);
      else if (!state.has(d)) visit(d);
    }
    stack.pop();
    state.set(n, 'done');
  };
  for (const n of [...graph.keys()].sort()) if (!state.has(n)) visit(n);
  return cycles;
}

describe('the import graph of src/', () => {
  it('finds a cycle where there is one (static and dynamic imports)', () => {
    const files = ['/s/a.ts', '/s/b.ts', '/s/c.ts'];
    const text: Record<string, string> = {
      '/s/a.ts': "import { b } from './b.js';\n",
      '/s/b.ts': "export { c } from './c.js';\n",
      '/s/c.ts': "const a = await import('./a.js');\n",
    };
    expect(findCycles(importGraph(files, (f) => text[f]!))).toEqual([['/s/a.ts', '/s/b.ts', '/s/c.ts', '/s/a.ts']]);
    text['/s/c.ts'] = "import { readFileSync } from 'node:fs';\n";
    expect(findCycles(importGraph(files, (f) => text[f]!))).toEqual([]);
  });

  it('has no cycles', () => {
    const files = sourceFiles(SRC);
    expect(files.length).toBeGreaterThan(50);
    const cycles = findCycles(importGraph(files, (f) => readFileSync(f, 'utf8'))).map((c) =>
      c.map((f) => relative(SRC, f)).join(' → '),
    );
    expect(cycles).toEqual([]);
  });
});

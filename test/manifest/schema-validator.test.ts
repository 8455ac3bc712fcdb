/**
 * The manifest validator is compiled at build time (scripts/gen-schema-validator.mjs,
 * ajv standalone code). It must answer exactly as the schema compiled at run
 * time does: same verdict, same errors (which load.ts turns into
 * file:line:column messages), on the examples and on random mutations of them.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { AJV_OPTIONS, SCHEMA_PATH, SCHEMA_VALIDATOR_URL } from '../../src/manifest/load.js';
import { PROJECT_ROOT } from '../helpers/cli.js';
// @ts-expect-error: a plain .mjs build script, no types
import { validatorSource } from '../../scripts/gen-schema-validator.mjs';
import { prng } from '../helpers/prng.js';

const schemaText = readFileSync(SCHEMA_PATH, 'utf8');

function loadGenerated(source: string): ValidateFunction & { schemaSha256: string } {
  const mod = { exports: {} as unknown };
  const req = createRequire(join(PROJECT_ROOT, 'dist', 'manifest', 'schema-validator.cjs'));
  new Function('module', 'exports', 'require', source)(mod, mod.exports, req);
  return mod.exports as ValidateFunction & { schemaSha256: string };
}

const VALUES: unknown[] = [
  '',
  'x',
  '/abs/path',
  'rel/path',
  '/a/../b',
  '0755',
  '755',
  'mkimg/v1',
  'mkimg/v2',
  'name=1.0',
  'amd64',
  'SIGTERM',
  'ab'.repeat(32),
  'é',
  -1,
  0,
  1,
  1.5,
  65535,
  65536,
  2 ** 32,
  true,
  false,
  null,
  [],
  ['x'],
  [1],
  [{}],
  {},
  { bogus: 1 },
  { name: 'n', uid: 1 },
  { src: 'a', dest: '/b' },
];

/** Every path to a value inside v (objects and arrays), the root included. */
function paths(v: unknown, at: (string | number)[] = []): (string | number)[][] {
  const out = [at];
  if (Array.isArray(v)) v.forEach((x, i) => out.push(...paths(x, [...at, i])));
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) out.push(...paths(x, [...at, k]));
  return out;
}

function mutate(doc: unknown, rnd: () => number): unknown {
  const copy = structuredClone(doc);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  for (let n = 1 + Math.floor(rnd() * 3); n > 0; n--) {
    const path = pick(paths(copy));
    if (path.length === 0) continue;
    let parent = copy as Record<string | number, unknown>;
    for (const p of path.slice(0, -1)) parent = parent[p] as Record<string | number, unknown>;
    const last = path[path.length - 1]!;
    const r = rnd();
    if (r < 0.2 && !Array.isArray(parent)) delete parent[last];
    else if (r < 0.3 && !Array.isArray(parent)) parent['unknown' + Math.floor(rnd() * 3)] = pick(VALUES);
    else parent[last] = structuredClone(pick(VALUES));
  }
  return copy;
}

const examples = readdirSync(join(PROJECT_ROOT, 'examples'), { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(join(PROJECT_ROOT, 'examples', d.name, 'manifest.yaml')))
  .map((d) => parse(readFileSync(join(PROJECT_ROOT, 'examples', d.name, 'manifest.yaml'), 'utf8')) as unknown);

describe('the build-time manifest validator', () => {
  const runtime = new Ajv(AJV_OPTIONS).compile(JSON.parse(schemaText));
  const generated = loadGenerated(validatorSource(schemaText, AJV_OPTIONS));
  const answer = (v: ValidateFunction, doc: unknown) => {
    const ok = v(doc);
    return { ok, errors: v.errors ?? null };
  };

  it('accepts the examples, as the run-time validator does', () => {
    expect(examples.length).toBeGreaterThan(0);
    for (const doc of examples) {
      expect(answer(generated, doc)).toEqual({ ok: true, errors: null });
      expect(answer(runtime, doc)).toEqual({ ok: true, errors: null });
    }
  });

  it('reports the same errors as the run-time validator on random mutations', () => {
    let invalid = 0;
    for (let seed = 1; seed <= 1500; seed++) {
      const rnd = prng(seed);
      const doc = mutate(examples[seed % examples.length], rnd);
      const want = answer(runtime, doc);
      if (!want.ok) invalid++;
      expect({ seed, ...answer(generated, doc) }).toEqual({ seed, ...want });
    }
    expect(invalid).toBeGreaterThan(500);
  });

  it('records the sha256 of the schema it was made from', () => {
    expect(generated.schemaSha256).toMatch(/^[0-9a-f]{64}$/);
    const other = loadGenerated(
      validatorSource(schemaText.replace('"title"', '"$comment": "changed", "title"'), AJV_OPTIONS),
    );
    expect(other.schemaSha256).not.toBe(generated.schemaSha256);
  });

  it("the built mkimg reads a manifest without loading ajv's compiler", (ctx) => {
    const built = fileURLToPath(SCHEMA_VALIDATOR_URL.replace('/src/manifest/', '/dist/manifest/'));
    if (!existsSync(built)) return ctx.skip('dist/ not built (npm run build)');
    const script = `
      import { createRequire } from 'node:module';
      const { loadManifest } = await import(${JSON.stringify(join(PROJECT_ROOT, 'dist/manifest/load.js'))});
      try { loadManifest(${JSON.stringify(join(PROJECT_ROOT, 'examples/static/manifest.yaml'))}); } catch (e) { console.error(e.message); process.exit(1); }
      const cache = Object.keys(createRequire(import.meta.url).cache);
      console.log(JSON.stringify({ validator: cache.some((k) => k.endsWith('schema-validator.cjs')), compiler: cache.some((k) => k.includes('/ajv/dist/core.js')) }));
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ validator: true, compiler: false });
  });
});

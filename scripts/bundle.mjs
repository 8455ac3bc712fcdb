#!/usr/bin/env node
/**
 * Build step (npm run build, last): bundle the compiled CLI, dist/cli/main.js,
 * with its dependencies into a few ES modules in dist/bundle/ (main.js, the
 * entry that bin/mkimg.js imports, plus one chunk per lazily imported part),
 * so that starting mkimg opens a handful of files instead of ~250.
 *
 * - splitting: every `await import()` of mkimg's own code stays lazy (its own
 *   chunk), so a command loads only what it uses.
 * - externals: @napi-rs/lzma (native addon), openpgp (large, loaded on
 *   first use through src/util/openpgp.ts) and the two WebAssembly
 *   compressors (loaded on first use) are imported from node_modules.
 * - banner: bundled CommonJS dependencies (yaml, commander, ajv's runtime,
 *   tar-stream, ...) `require` node builtins; an ES module has no `require`,
 *   so each chunk makes one with createRequire.
 * - no minification (readable stack traces); no timestamps, chunk names are
 *   content hashes: the same dist/ gives the same bundle.
 *
 * Files found at run time through `new URL(..., import.meta.url)` (workers,
 * dist/manifest/schema-validator.cjs, package.json, the tracer) are not
 * bundled: dist/bundle/ sits at the same depth as dist/<stage>/, so a URL
 * written as '../<stage>/file' or '../../file' resolves to the same file from
 * either place (see test/cli/bundle.test.ts).
 */
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'dist/bundle');

rmSync(outdir, { recursive: true, force: true });
const result = await build({
  absWorkingDir: root,
  entryPoints: { main: 'dist/cli/main.js', run: 'dist/run/main.js' },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['@napi-rs/lzma', 'openpgp', '@bokuweb/zstd-wasm', 'libdeflate', '*.node'],
  entryNames: '[name]',
  chunkNames: 'chunk-[hash]',
  banner: {
    js: "import { createRequire as __mkimgCreateRequire } from 'node:module'; const require = __mkimgCreateRequire(import.meta.url);",
  },
  legalComments: 'none',
  sourcemap: false,
  logLevel: 'warning',
});
if (result.errors.length > 0) process.exit(1);

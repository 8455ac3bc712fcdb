#!/usr/bin/env node
// Image sizes (issue 15): each shipped example built as shipped (minimized)
// and as the same manifest with `minimize: false` (the same Debian packages
// and inputs, every file: what a distroless image of that package set
// carries), plus a reconstruction of distroless python3-debian12's package
// set (the python example's packages plus distroless base's base-files,
// netbase, ca-certificates, libssl3, libgomp1, libstdc++6), unminimized.
// Sizes are uncompressed image tars (`compression: none`). Also the floor of
// the size aim: the file bytes the python image must hold whatever the
// minimizer does (the whole standard library with the python binary, the
// shared libraries its extension modules link, and every package's copyright
// file). Needs `npm run build`, the host mirror.
// Run: node bench/sizes.mjs
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), 'mkimg-sizes-'));
const cache = process.env.MKIMG_CACHE_DIR ?? join(work, 'cache');

function mkimg(args) {
  const r = spawnSync(process.execPath, [join(root, 'bin/mkimg.js'), ...args], {
    encoding: 'utf8',
    maxBuffer: 1 << 26,
  });
  if (r.status !== 0) throw new Error(`mkimg ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r;
}

/** Build a variant of an example's manifest (written beside it, so relative paths hold) and return the tar size. */
function sizeOf(example, name, edit, relock = false) {
  const src = join(root, 'examples', example, 'manifest.yaml');
  const manifest = join(root, 'examples', example, `.sizes-${name}.yaml`);
  try {
    writeFileSync(manifest, edit(readFileSync(src, 'utf8')).replace(/\nlock:/, '\ncompression: none\nlock:'));
    if (relock) mkimg(['lock', manifest, '--cache-dir', cache]);
    const out = join(work, `${example}-${name}.tar`);
    mkimg(['build', manifest, '-o', out, '--cache-dir', cache]);
    return statSync(out).size;
  } finally {
    rmSync(manifest, { force: true });
  }
}

/** The manifest with its minimize: block replaced by `minimize: false`. */
const unminimized = (text) => text.replace(/^minimize:\n(?:(?:[ #].*)?\n)*/m, 'minimize: false\n');
const mb = (n) => (n / 1e6).toFixed(1) + ' MB';

/** Bytes of the regular files in an uncompressed image tar's layers, by what holds them. */
function fileBytesByKind(image) {
  const kinds = {};
  const members = spawnSync('tar', ['-tf', image], { encoding: 'utf8' }).stdout.split('\n');
  for (const blob of members.filter((m) => m.startsWith('blobs/sha256/') && m.length > 20)) {
    const bytes = spawnSync('tar', ['-xOf', image, blob], { maxBuffer: 1 << 30 }).stdout;
    const listing = spawnSync('tar', ['-tvf', '-'], { input: bytes, encoding: 'utf8', maxBuffer: 1 << 26 });
    if (listing.status !== 0) continue; // the config, the manifest, the index
    for (const line of listing.stdout.split('\n').filter((l) => l.startsWith('-'))) {
      const [, , size, , , path] = line.split(/\s+/);
      const kind = /^usr\/lib\/python3\.11\/|^usr\/bin\/python3\.11$|^etc\/python3\.11\//.test(path)
        ? 'standard library and python binary'
        : /^usr\/lib\/x86_64-linux-gnu\//.test(path)
          ? 'shared libraries (libc and what the extension modules link)'
          : /^usr\/share\/doc\/[^/]+\/copyright$/.test(path)
            ? 'copyright files'
            : 'the rest';
      kinds[kind] = (kinds[kind] ?? 0) + Number(size);
    }
  }
  return kinds;
}

try {
  const rows = [];
  for (const ex of ['static', 'c-app', 'nginx', 'python']) {
    if (ex === 'c-app') spawnSync('sh', [join(root, 'examples/c-app/build.sh')], { stdio: 'ignore' });
    const min = sizeOf(ex, 'min', (t) => t);
    const full = sizeOf(ex, 'full', unminimized);
    rows.push([ex, mb(min), mb(full), (full / min).toFixed(2) + 'x']);
  }
  const distrolessLike = sizeOf(
    'python',
    'distroless',
    (t) =>
      unminimized(t).replace(
        /^packages:\n/m,
        'packages:\n  - base-files\n  - netbase\n  - ca-certificates\n  - libssl3\n  - libgomp1\n  - libstdc++6\n',
      ),
    true,
  );
  rows.push(['python3-debian12 package set (reconstructed), unminimized', '', mb(distrolessLike), '']);
  console.log('| example | minimized (as shipped) | same packages, minimize: false | ratio |');
  console.log('|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
  const pyMin = statSync(join(work, 'python-min.tar')).size;
  console.log(
    `\npython minimized (whole stdlib kept) vs python3-debian12 set unminimized: ${(distrolessLike / pyMin).toFixed(2)}x smaller`,
  );
  const kinds = fileBytesByKind(join(work, 'python-min.tar'));
  console.log(
    `\nfile bytes of the minimized python image (2x smaller allows ${mb(distrolessLike / 2)} for the whole tar):`,
  );
  for (const [k, n] of Object.entries(kinds).sort((a, b) => b[1] - a[1])) console.log(`  ${mb(n)}  ${k}`);
  const floor = Object.entries(kinds).reduce((n, [k, v]) => (k === 'the rest' ? n : n + v), 0);
  console.log(
    `  floor (all but the rest): ${mb(floor)}, ${(distrolessLike / floor).toFixed(2)}x smaller than the set at most`,
  );
} finally {
  rmSync(work, { recursive: true, force: true });
}

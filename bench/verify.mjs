#!/usr/bin/env node
// Verify benchmark (issue 5): `mkimg verify --no-rebuild` on a ~100 MB image,
// beside `sha256sum image.tar` (reading and hashing the same bytes once).
// Aim: ratio <= 1.3. Needs `npm run build` first.
// With --full, also a full verify (with rebuild, warm cache) beside one warm build.
// Run: node bench/verify.mjs [--runs N] [--mb SIZE] [--full]
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prng, table, timeShell } from './lib.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, dflt) => (process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : dflt);
const runs = arg('--runs', 5);
const MB = arg('--mb', 100);
const work = `/tmp/mkimg-bench-verify-${MB}`;
const tree = join(work, 'tree');
const dist = join(root, 'dist');
if (!existsSync(join(dist, 'cli/main.js'))) {
  console.error('bench/verify.mjs: run `npm run build` first');
  process.exit(2);
}

// The mkimg command: bin/mkimg.js once main.ts registers verify; until then a
// driver in dist/ that registers the command the same way.
let mkimgCmd = `node ${join(root, 'bin/mkimg.js')}`;
if (!readFileSync(join(dist, 'cli/main.js'), 'utf8').includes('registerVerify')) {
  const driver = join(dist, '.bench-verify-driver.mjs');
  writeFileSync(
    driver,
    `import { makeProgram } from './cli/main.js';
import { registerVerify } from './cli/commands/verify.js';
const p = makeProgram(); registerVerify(p); await p.parseAsync(process.argv);\n`,
  );
  mkimgCmd = `node ${driver}`;
}

// 1. A ~MB-sized files: tree, deterministic content (incompressible).
if (!existsSync(join(work, '.done'))) {
  rmSync(work, { recursive: true, force: true });
  mkdirSync(tree, { recursive: true });
  const rnd = prng(7);
  for (let i = 0; i < MB; i++) {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (let j = 0; j < buf.length; j += 4) buf.writeUInt32LE(rnd(), j);
    writeFileSync(join(tree, `f${String(i).padStart(4, '0')}.bin`), buf);
  }
  writeFileSync(join(work, '.done'), '');
}

// 2. Build it with mkimg, sign the manifest with a fresh key.
const manifest = join(work, 'manifest.yaml');
writeFileSync(
  manifest,
  `apiVersion: mkimg/v1\nname: bench/verify\nsourceDateEpoch: 1700000000\nfiles:\n  - src: tree/\n    dest: /data\nminimize: false\nlayering: {strategy: single}\ncompression: none\n`,
);
const { generateKeyFiles, signManifest } = await import(join(dist, 'sign/sign.js'));
// mkimg lock (in process: no packages, it only pins the files: input)
{
  const { loadManifest } = await import(join(dist, 'manifest/load.js'));
  const { resolveLock } = await import(join(dist, 'lock/resolve.js'));
  const { writeLockIntoManifest } = await import(join(dist, 'lock/write.js'));
  const lock = await resolveLock(loadManifest(manifest));
  writeFileSync(manifest, writeLockIntoManifest(readFileSync(manifest, 'utf8'), lock));
}
rmSync(join(work, 'key.secret.asc'), { force: true });
rmSync(join(work, 'key.public.asc'), { force: true });
const key = await generateKeyFiles({ name: 'Bench', email: 'bench@example.org', prefix: join(work, 'key') });
const image = join(work, 'image.tar');
const build = spawnSync(
  process.execPath,
  [join(root, 'bin/mkimg.js'), 'build', manifest, '-o', image, '--work-dir', work],
  { encoding: 'utf8' },
);
if (build.status !== 0) {
  console.error(`mkimg build failed (${build.status}):\n${build.stderr}`);
  process.exit(1);
}
await signManifest({ manifestPath: manifest, keyPath: key.secretPath });
const size = statSync(image).size;

// 3. Time both (median of runs, after one warm-up each: the file is in the page cache for both).
const verify = `${mkimgCmd} verify ${image} ${manifest}.sig --keyring ${key.publicPath} --no-rebuild`;
execFileSync('bash', ['-c', verify], { stdio: 'inherit' });
const tSha = timeShell(`sha256sum ${image}`, { runs });
const tVerify = timeShell(verify, { runs });
const tNode = timeShell(`node -e 0`, { runs });
// The CLI's own start-up (loading every command's modules), and verify without it.
const tHelp = timeShell(`${mkimgCmd} --help`, { runs });
writeFileSync(
  join(work, 'verify-lib.mjs'),
  `const m = await import(${JSON.stringify(join(dist, 'verify/verify.js'))});\n` +
    `await m.verifyImage({ image: ${JSON.stringify(image)}, signature: ${JSON.stringify(manifest + '.sig')}, keyring: ${JSON.stringify(key.publicPath)}, rebuild: false });\n`,
);
const lib = `node ${join(work, 'verify-lib.mjs')}`;
const tLib = timeShell(lib, { runs });

console.log(`\nimage: ${(size / 1048576).toFixed(1)} MiB, ${runs} runs, median wall time\n`);
console.log(
  table([
    ['command', 'seconds', 'MiB/s', 'ratio'],
    ['sha256sum image.tar', tSha.toFixed(3), (size / 1048576 / tSha).toFixed(0), '1.00'],
    [
      'mkimg verify --no-rebuild',
      tVerify.toFixed(3),
      (size / 1048576 / tVerify).toFixed(0),
      (tVerify / tSha).toFixed(2),
    ],
    ['verifyImage() alone (no CLI)', tLib.toFixed(3), (size / 1048576 / tLib).toFixed(0), (tLib / tSha).toFixed(2)],
    ['(mkimg --help: CLI start-up)', tHelp.toFixed(3), '', (tHelp / tSha).toFixed(2)],
    ['(node -e 0: node start-up)', tNode.toFixed(3), '', (tNode / tSha).toFixed(2)],
  ]),
);
console.log(`\nratio verify/sha256sum: ${(tVerify / tSha).toFixed(2)} (aim <= 1.3)`);

if (process.argv.includes('--full')) {
  const fullRuns = Math.min(runs, 3);
  const tBuild = timeShell(
    `node ${join(root, 'bin/mkimg.js')} build ${manifest} -o ${join(work, 'again.tar')} --work-dir ${work}`,
    { runs: fullRuns },
  );
  const tFull = timeShell(`${mkimgCmd} verify ${image} ${manifest}.sig --keyring ${key.publicPath}`, {
    runs: fullRuns,
  });
  console.log(
    `\nfull verify (rebuild, warm cache): ${tFull.toFixed(3)} s; one warm build: ${tBuild.toFixed(3)} s; ratio ${(tFull / tBuild).toFixed(2)}`,
  );
}

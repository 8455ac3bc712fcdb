#!/usr/bin/env node
// Multi-platform benchmark (issue 18, Speed): the python example built for
// amd64 and arm64 in one image index, against the same manifest built for
// one platform (--platform linux/amd64), warm cache, minimized as shipped.
// The foreign platform's checks run under qemu-user (binfmt_misc); their
// cost is shown as each platform's minimized build minus its `minimize:
// false` build (tracing the checks and proving the minimized root), native
// against emulated.
// Aim (issue 18): two platforms at most 2.2x one platform.
// Needs `npm run build`, the host's Debian mirror (the first run fills the
// cache) and a qemu-aarch64 binfmt_misc handler (qemu-user-static).
// Run: node bench/platforms.mjs [--runs N]
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { table, timeShell } from './lib.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const opt = (name, dflt) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : dflt);
const runs = Number(opt('--runs', 3)) || 3;
if (!existsSync(join(root, 'dist/cli/main.js'))) {
  console.error('bench/platforms.mjs: run `npm run build` first');
  process.exit(2);
}
if (!existsSync('/proc/sys/fs/binfmt_misc/qemu-aarch64')) {
  console.error(
    'bench/platforms.mjs: no qemu-aarch64 binfmt_misc handler (apt-get install qemu-user-static binfmt-support)',
  );
  process.exit(2);
}

const work = '/tmp/mkimg-bench-platforms';
rmSync(work, { recursive: true, force: true });
const proj = join(work, 'python');
cpSync(join(root, 'examples/python'), proj, { recursive: true });
const cache = join(work, 'cache');
const out = join(work, 'out');
mkdirSync(out, { recursive: true });

// The shipped manifest, unlocked, for both platforms; and the same with `minimize: false`.
let text = readFileSync(join(proj, 'manifest.yaml'), 'utf8');
text = text.slice(0, text.indexOf('# Pins written'));
text = text
  .replace(/^tag: (.*)$/m, 'tag: $1\narchitectures: [amd64, arm64]')
  .replaceAll('../../keys/', `${root}/keys/`);
const minimized = join(proj, 'manifest.yaml');
const unminimized = join(proj, 'unminimized.yaml');
writeFileSync(minimized, text);
writeFileSync(unminimized, text.replace(/^minimize:\n(?:(?:[ #].*)?\n)*/m, 'minimize: false\n'));

const mkimg = `${process.execPath} ${join(root, 'bin/mkimg.js')}`;
for (const m of [minimized, unminimized]) execFileSync('bash', ['-c', `${mkimg} lock ${m} --cache-dir ${cache}`]);
const build = (manifest, platform) =>
  `${mkimg} build ${manifest} --cache-dir ${cache} -o ${out}/image.tar${platform ? ` --platform ${platform}` : ''}`;
// Fill the cache (both architectures' .debs) untimed.
execFileSync('bash', ['-c', build(unminimized)]);

const t = (manifest, platform) => timeShell(build(manifest, platform), { runs });
const one = t(minimized, 'linux/amd64');
const two = t(minimized);
const armAlone = t(minimized, 'linux/arm64');
const amdPlain = t(unminimized, 'linux/amd64');
const armPlain = t(unminimized, 'linux/arm64');
const s = (x) => `${x.toFixed(2)} s`;
console.log(`python example, warm cache, median of ${runs} runs (2 cores)\n`);
console.log(
  table([
    ['build', 'time', 'ratio'],
    ['linux/amd64 alone (minimized)', s(one), '1.00x'],
    ['linux/amd64 + linux/arm64, one index', s(two), `${(two / one).toFixed(2)}x one platform (aim <= 2.2x)`],
    ['linux/arm64 alone (minimized, checks emulated)', s(armAlone), `${(armAlone / one).toFixed(2)}x amd64`],
    ['linux/amd64, minimize: false', s(amdPlain), ''],
    ['linux/arm64, minimize: false', s(armPlain), ''],
  ]),
);
const nativeChecks = one - amdPlain;
const emulatedChecks = armAlone - armPlain;
console.log(
  `\nminimization (trace the checks + prove): native ${s(nativeChecks)}, under qemu-user ${s(emulatedChecks)}` +
    ` (${(emulatedChecks / nativeChecks).toFixed(1)}x)`,
);
rmSync(work, { recursive: true, force: true });

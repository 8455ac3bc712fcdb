#!/usr/bin/env node
/**
 * Screenshots of the examples' HTML reports for the README:
 * examples/<name>/report.png. Builds each example (the host's Debian mirror,
 * as test/examples does) with --report-html, opens the page in headless
 * chromium (Debian's package, driven by playwright-core) and captures the
 * overview. Usage: node scripts/example-screenshots.mjs [name...] [--cache-dir DIR]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium } from './chromium.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const ci = args.indexOf('--cache-dir');
const cacheDir = ci >= 0 ? args.splice(ci, 2)[1] : undefined;
const names = args.length ? args : ['static', 'python', 'c-app', 'nginx'];
const work = mkdtempSync(join(tmpdir(), 'mkimg-shots-'));
const browser = await launchChromium();
try {
  for (const name of names) {
    const html = join(work, `${name}.html`);
    // An example that compiles its program first (c-app) says so with a build.sh.
    const pre = join(root, 'examples', name, 'build.sh');
    if (existsSync(pre) && spawnSync('sh', [pre], { stdio: ['ignore', 'ignore', 'inherit'] }).status !== 0) {
      console.error(`${name}: ${pre} failed; skipped`);
      continue;
    }
    const r = spawnSync(
      process.execPath,
      [
        join(root, 'bin/mkimg.js'),
        'build',
        join(root, 'examples', name, 'manifest.yaml'),
        '-o',
        `${name}.tar`,
        '--report-html',
        html,
        ...(cacheDir ? ['--cache-dir', cacheDir] : []),
      ],
      {
        cwd: work, // the page names the image as given: "<name>.tar"
        stdio: ['ignore', 'ignore', 'inherit'],
      },
    );
    if (r.status !== 0) {
      console.error(`${name}: mkimg build failed (exit ${r.status}); skipped`);
      continue;
    }
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto('file://' + html);
    await page.waitForSelector('body[data-ready]');
    const out = join(root, 'examples', name, 'report.png');
    await page.screenshot({ path: out });
    await page.close();
    console.log(`${name}: ${out}`);
  }
} finally {
  await browser.close();
  rmSync(work, { recursive: true, force: true });
}

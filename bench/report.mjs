#!/usr/bin/env node
// HTML report benchmark (issue 19): time from opening a report page to its
// views being drawn (body[data-ready]), in headless chromium, median of N
// fresh page loads, for the report files given (write them with
// `mkimg inspect IMAGE --html FILE` or `mkimg build … --report-html FILE`).
// Aim: the python example unminimized (~2,700 files here) well under 2 s.
// Run: node bench/report.mjs [--runs N] page.html...
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { launchChromium } from '../scripts/chromium.mjs';

const args = process.argv.slice(2);
const ri = args.indexOf('--runs');
const runs = ri >= 0 ? Number(args.splice(ri, 2)[1]) : 5;
if (!args.length) {
  console.error('usage: node bench/report.mjs [--runs N] page.html...');
  process.exit(2);
}
const browser = await launchChromium();
try {
  for (const f of args) {
    const times = [];
    let entries = 0;
    for (let i = 0; i < runs; i++) {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const t0 = Date.now();
      await page.goto('file://' + resolve(f));
      await page.waitForSelector('body[data-ready]', { timeout: 60_000 });
      times.push(Date.now() - t0);
      entries = await page.evaluate(
        () => JSON.parse(document.getElementById('mkimg-data').textContent).files?.length ?? 0,
      );
      await page.close();
    }
    times.sort((a, b) => a - b);
    console.log(
      `${f}: ${entries} entries, ${(statSync(f).size / 1024).toFixed(0)} KiB, ready in median ${times[runs >> 1]} ms (min ${times[0]}, max ${times[runs - 1]}, ${runs} loads)`,
    );
  }
} finally {
  await browser.close();
}

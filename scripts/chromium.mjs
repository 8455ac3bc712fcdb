// Headless Chromium (Debian's `chromium` package) through playwright-core, for
// the report tests, bench/report.mjs and scripts/example-screenshots.mjs: the
// system binary (no browser download), a fresh profile, no network services.
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.MKIMG_CHROMIUM ?? '/usr/bin/chromium';

export function launchChromium() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

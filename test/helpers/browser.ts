/**
 * Headless Chromium (Debian's `chromium` package) driven by playwright-core,
 * for tests that check what a person sees in mkimg's HTML reports. No browser
 * download: the system binary, a fresh profile, no network services.
 */
import { existsSync } from 'node:fs';
import { CHROMIUM, launchChromium } from '../../scripts/chromium.mjs';

export { CHROMIUM, launchChromium };

export function haveChromium(): boolean {
  return existsSync(CHROMIUM);
}

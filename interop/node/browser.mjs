// Headless Chromium for the browser tests: Debian's `chromium`, driven by playwright-core.
//
// The binary comes from PLANNT_CHROMIUM (default /usr/bin/chromium; scripts/test installs it).
// Chromium starts headless with a fresh temporary profile and without the background
// connections it makes at every start (a closed network refuses them).

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.PLANNT_CHROMIUM || '/usr/bin/chromium';

/**
 * Starts headless Chromium. Resolves with `{ browser, page, close }`: a fresh page in a fresh
 * context; `close()` ends the browser.
 */
export async function openBrowser() {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium (or set PLANNT_CHROMIUM)`);
  const browser = await chromium.launch({
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
  const context = await browser.newContext();
  const page = await context.newPage();
  const close = () => browser.close();
  return { browser, page, close };
}

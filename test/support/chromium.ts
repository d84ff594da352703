// Debian's chromium for the browser tests, driven by playwright-core (which downloads no browser).
// Without it a browser test is skipped on a developer's machine and FAILS under CI (CI=true), where
// .ci/run installs it.

import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = process.env.WARD_CHROMIUM ?? '/usr/bin/chromium';
const missing = !existsSync(CHROMIUM);

/** node:test's `skip` option for a browser test: why, off CI with no chromium; else false. */
export const chromiumSkip: string | false = missing && !process.env.CI ? `no chromium at ${CHROMIUM} (apt-get install chromium)` : false;

/** Starts headless chromium (root-safe, no GPU, nothing fetched from outside); under CI without one, fails. */
export function launchChromium(): Promise<Browser> {
  if (missing) throw new Error(`CI is set and there is no chromium at ${CHROMIUM}: .ci/run must install Debian's chromium`);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

// Real headless Chromium (Debian's /usr/bin/chromium, which scripts/setup.sh
// installs) driven by playwright-core, for the dashboard's browser tests and
// benchmark. Never downloads a browser.
import { existsSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';

export const CHROMIUM = process.env.CGFENCE_CHROMIUM ?? '/usr/bin/chromium';

export interface Chromium {
  browser: Browser;
  /** A new context: its own cookies, storage and cache (a cold browser). */
  context(viewport?: { width: number; height: number }): Promise<BrowserContext>;
  close(): Promise<void>;
}

/**
 * Launches Chromium headless with no network of its own (no component
 * updates, sync or background requests: only what the page asks for).
 * playwright-core gives every launch a fresh, empty profile directory
 * (--user-data-dir) and removes it on close.
 */
export async function launchChromium(): Promise<Chromium> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (scripts/setup.sh does)`);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  return {
    browser,
    // bypassCSP: the tests inject axe-core, a script the page's policy would refuse.
    context: (viewport = { width: 1280, height: 900 }) => browser.newContext({ viewport, bypassCSP: true }),
    close: () => browser.close(),
  };
}

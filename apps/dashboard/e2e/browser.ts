// Real headless Chromium (Debian's /usr/bin/chromium) driven by playwright-core,
// and axe-core run inside each page. Never downloads a browser.
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = process.env.CGFENCE_CHROMIUM ?? '/usr/bin/chromium';

export interface Chromium {
  browser: Browser;
  context(): Promise<BrowserContext>;
  close(): Promise<void>;
}

/**
 * Launches Debian's Chromium headless, with no network of its own (only what
 * the page asks for). playwright-core gives every launch a fresh, empty
 * profile directory (--user-data-dir) and removes it on close.
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
    // bypassCSP: axe-core is injected as a script the page's policy would refuse.
    context: () => browser.newContext({ viewport: { width: 1280, height: 900 }, bypassCSP: true }),
    close: () => browser.close(),
  };
}

const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[] }[];
}

/** axe-core's violations of serious or critical impact on the page as it is now. */
export async function seriousViolations(page: Page): Promise<AxeViolation[]> {
  await page.addScriptTag({ content: AXE });
  const result = await page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run(ctx: Document, o: object): Promise<{ violations: AxeViolation[] }> } }).axe;
    return axe.run(document, { resultTypes: ['violations'] });
  });
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => ({ target: n.target })) }));
}

/** Where the screenshots go: CGFENCE_SCREENSHOTS, or a fresh folder under the temp dir. */
export function screenshotDir(): string {
  const dir = process.env.CGFENCE_SCREENSHOTS ?? mkdtempSync(join(tmpdir(), 'cgfence-dashboard-screens-'));
  mkdirSync(dir, { recursive: true });
  return dir;
}

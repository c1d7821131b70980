// axe-core run inside a page of the dashboard's browser tests (the browser
// itself comes from libs/devservices: Debian's Chromium, never a download).
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';

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
    const axe = (window as unknown as { axe: { run(ctx: Document): Promise<{ violations: AxeViolation[]; passes: unknown[] }> } }).axe;
    return axe.run(document);
  });
  // A run that checked nothing would pass anything.
  if (result.passes.length === 0) throw new Error('axe-core ran no check on this page');
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

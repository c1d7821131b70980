/** Prints results either as JSON (for scripts) or as aligned text columns. */
export interface Output {
  json: boolean;
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Aligned columns for humans. Hand-written: a dozen lines did not justify a
 * table-drawing dependency, and plain columns stay greppable.
 */
export function printTable(headers: string[], rows: (string | number | null | undefined)[][]): void {
  const cells = [headers, ...rows.map((r) => r.map((c) => (c === null || c === undefined ? '-' : String(c))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  for (const r of cells) {
    process.stdout.write(`${r.map((c, i) => (i === r.length - 1 ? c : (c ?? '').padEnd(widths[i] ?? 0))).join('  ')}\n`);
  }
}

export function printLines(lines: string[]): void {
  for (const l of lines) process.stdout.write(`${l}\n`);
}

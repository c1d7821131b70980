#!/usr/bin/env node
// Runs the benchmarks on the compiled output: every dist/**/*.bench.js, one at
// a time (they load the machine), each as its own process so one that fails
// does not hide the others. Each prints its own table with the target and the
// baseline measured in the same run.
// Usage: node scripts/bench.mjs [--only substring]
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const onlyAt = args.indexOf('--only');
const only = onlyAt >= 0 ? args[onlyAt + 1] : undefined;

function find(dir, acc = []) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules') continue;
    const p = join(dir, entry.name);
    if (entry.isDirectory()) find(p, acc);
    else if (entry.name.endsWith('.bench.js') && p.includes('/dist/')) acc.push(p);
  }
  return acc;
}

const files = ['apps', 'libs'].flatMap((d) => find(join(root, d))).filter((f) => !only || f.includes(only)).sort();
if (files.length === 0) {
  console.error(`no benchmarks found${only ? ` matching ${only}` : ''} (did the build run?)`);
  process.exit(1);
}
let failed = 0;
for (const f of files) {
  console.log(`\n=== ${relative(root, f)}`);
  const r = spawnSync(process.execPath, ['--expose-gc', f], { stdio: 'inherit' });
  if (r.status !== 0) {
    failed++;
    console.error(`benchmark ${relative(root, f)} failed (exit ${r.status ?? r.signal})`);
  }
}
process.exit(failed ? 1 : 0);

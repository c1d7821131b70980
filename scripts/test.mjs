#!/usr/bin/env node
// Runs the test tiers on the compiled output with node's own test runner.
//   unit: *.spec.js that are neither .int. nor .e2e.   (pure, no processes)
//   int:  *.int.spec.js   (real PostgreSQL, real nats-server, real kernel)
//   e2e:  *.e2e.spec.js   (whole processes, as a user runs them)
// Usage: node scripts/test.mjs [unit|int|e2e ...] [--only substring]
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const onlyAt = args.indexOf('--only');
const only = onlyAt >= 0 ? args.splice(onlyAt, 2)[1] : undefined;
const tiers = args.length > 0 ? args : ['unit', 'int', 'e2e'];
const tierOf = (f) => (f.endsWith('.int.spec.js') ? 'int' : f.endsWith('.e2e.spec.js') ? 'e2e' : 'unit');

function find(dir, acc = []) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules') continue;
    const p = join(dir, entry.name);
    if (entry.isDirectory()) find(p, acc);
    else if (entry.name.endsWith('.spec.js') && p.includes('/dist/')) acc.push(p);
  }
  return acc;
}

const all = ['apps', 'libs', 'migrations'].flatMap((d) => find(join(root, d)));
// One runner invocation, files in tier order (unit, then int, then e2e), so the
// run ends with one summary. Integration and e2e files start real servers and
// touch the kernel: files run one at a time so they never fight over cgroups.
const order = { unit: 0, int: 1, e2e: 2 };
const files = all
  .filter((f) => tiers.includes(tierOf(f)) && (!only || f.includes(only)))
  .sort((a, b) => order[tierOf(a)] - order[tierOf(b)] || a.localeCompare(b));
if (files.length === 0) {
  console.error(`no ${tiers.join('/')} tests found${only ? ` matching ${only}` : ''} (did the build run?)`);
  process.exit(1);
}
for (const tier of tiers) console.log(`${tier}: ${files.filter((f) => tierOf(f) === tier).length} files`);
const res = spawnSync(process.execPath, ['--enable-source-maps', '--test', '--test-concurrency=1', '--test-reporter=spec',
  ...files.map((f) => relative(root, f))], { cwd: root, stdio: 'inherit' });
process.exit(res.status ?? 1);

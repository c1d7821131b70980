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
    else if (entry.name.endsWith('.spec.js') && p.includes(`${'/dist/'}`)) acc.push(p);
  }
  return acc;
}

const all = ['apps', 'libs', 'migrations'].flatMap((d) => find(join(root, d)));
let failed = false;
for (const tier of tiers) {
  const files = all.filter((f) => tierOf(f) === tier && (!only || f.includes(only))).sort();
  if (files.length === 0) {
    console.error(`no ${tier} tests found (did the build run?)`);
    failed = true;
    continue;
  }
  console.log(`\n== ${tier} tests: ${files.length} files`);
  // Integration and e2e files start real servers and touch the kernel: run them
  // one file at a time so they never fight over cgroups or CPU.
  const concurrency = tier === 'unit' ? '2' : '1';
  const res = spawnSync(process.execPath, ['--enable-source-maps', '--test', `--test-concurrency=${concurrency}`,
    '--test-reporter=spec', ...files.map((f) => relative(root, f))], { cwd: root, stdio: 'inherit' });
  if (res.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);

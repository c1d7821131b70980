// Fuzzing step of the test command (scripts/check.sh): runs each fuzz target
// of apps/host-agent/src/fuzz/fuzz-targets.ts (compiled) for FUZZ_SECONDS
// (default 60) with a fresh seed, and stops at the first input that crashes,
// hangs or breaks an invariant, printing it in the form REGRESSIONS takes
// (add it there: fuzz-targets.spec.ts then replays it on every test run).
//
// Usage: node scripts/fuzz.mjs [--seconds N] [--only NAME] [--seed N]
import { Buffer } from 'node:buffer';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
const root = join(import.meta.dirname, '..');
const args = process.argv.slice(2);
const opt = (name) => {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : undefined;
};
const seconds = Number(opt('--seconds') ?? process.env.FUZZ_SECONDS ?? 60);
const only = opt('--only');
const seed = Number(opt('--seed') ?? (Date.now() & 0x7fffffff));

const fc = require('fast-check');
const { FUZZ_TARGETS, hex } = require(join(root, 'apps/host-agent/dist/src/fuzz/fuzz-targets.js'));

const save = (name, input) => {
  if (Buffer.isBuffer(input)) return hex(input);
  if (typeof input === 'string') return input;
  return JSON.stringify(input, (k, v) => (v && v.type === 'Buffer' && Array.isArray(v.data) ? Buffer.from(v.data).toString('hex') : v));
};

let failed = 0;
for (const t of FUZZ_TARGETS) {
  if (only && t.name !== only) continue;
  const started = Date.now();
  const out = fc.check(fc.property(t.arbitrary, (input) => t.check(input)), {
    seed,
    numRuns: Number.MAX_SAFE_INTEGER,
    interruptAfterTimeLimit: seconds * 1000,
    markInterruptAsFailure: false,
  });
  const took = ((Date.now() - started) / 1000).toFixed(0);
  if (out.failed) {
    failed++;
    const input = out.counterexample?.[0];
    console.error(`FUZZ ${t.name}: FAILED after ${out.numRuns} inputs (${took} s, seed ${seed}): ${out.errorInstance?.message ?? out.error}`);
    console.error(`  add to REGRESSIONS['${t.name}']: ${JSON.stringify(save(t.name, input))}`);
  } else {
    console.log(`fuzz ${t.name}: ${out.numRuns} inputs in ${took} s, seed ${seed}: no crash, hang or broken invariant`);
  }
}
process.exit(failed > 0 ? 1 : 0);

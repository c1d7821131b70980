// Benchmark: what the deploy cgroup's programs add to connect(), with a
// 100,000-CIDR + 100,000-name policy in force. Target (issue 3): under 2%.
//
// A real agent (`cgfence agent`) runs with the policy; a small C loop
// (connect-loop.c, built here with clang) times connect() from inside a run
// of the deploy cgroup (`cgfence run`) and, as the baseline in the same run,
// from outside it. Rounds alternate inside/outside so drift in the machine's
// load hits both. Destinations are loopback and not on the list, so the
// programs do the full lookup and let the call through.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgentStatus } from '@cgfence/proto';
import { freePort, median, printTable, verdict } from '@cgfence/devservices';
import { AgentUnderTest, exec } from '../e2e/agent-harness';


const ROUNDS = 9;
const TARGET_PCT = 2;
const CASES = [
  { name: 'UDP connect() (connect4 hook)', mode: 'udp', iterations: 400_000 },
  { name: 'TCP connect() + RST + close (connect4 + egress)', mode: 'tcp', iterations: 60_000 },
] as const;

function policyText(): string {
  const lines: string[] = [];
  for (let i = 0; i < 100_000; i++) lines.push(i % 4 === 0 ? `*.svc-${i}.deploy.example` : `api-${i}.internal.example`);
  for (let i = 1; i <= 100_000; i++) lines.push(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32`);
  return lines.join('\n') + '\n';
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'cgfence-bench-connect-'));
  const loop = join(dir, 'connect-loop');
  execFileSync('clang', ['-O2', '-Wall', '-Werror', '-o', loop, join(__dirname, '..', '..', '..', 'src', 'bench', 'connect-loop.c')]);
  const agent = await AgentUnderTest.start({ policy: policyText() });
  try {
    const port = await freePort();
    // The loop really runs under the programs: a listed address is refused.
    const refused = await agent.run([loop, 'udp', '10.0.0.1', '80', '1']);
    if (refused.code !== 2 || !/Operation not permitted/.test(refused.stderr)) {
      throw new Error(`a blocked address was not refused inside the run (exit ${refused.code}): ${refused.stderr}`);
    }
    const rows: (string | number)[][] = [];
    const notes: string[] = [];
    for (const c of CASES) {
      const args = [c.mode, '127.0.0.1', String(port), String(c.iterations)];
      const inside: number[] = [];
      const outside: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const out = await exec(loop, args);
        const ins = await agent.run([loop, ...args]);
        if (out.code !== 0 || ins.code !== 0) throw new Error(`connect-loop failed: outside ${out.stderr} inside ${ins.stderr}`);
        outside.push(Number(out.stdout.trim()));
        inside.push(Number(ins.stdout.trim()));
      }
      const o = median(outside);
      const i = median(inside);
      const pct = ((i - o) / o) * 100;
      rows.push([c.name, o, i, i - o, `${pct.toFixed(2)}%`, verdict(pct < TARGET_PCT)]);
    }
    const { policy } = JSON.parse((await agent.cli(['agent', 'status', '--json'])).stdout) as AgentStatus;
    const names = policy.domains + policy.wildcards;
    if (names !== 100_000 || policy.cidr4 !== 100_000) throw new Error(`the agent did not load the whole policy: ${JSON.stringify(policy)}`);
    notes.push(`target: overhead under ${TARGET_PCT}% · policy in force: ${names.toLocaleString('en-US')} names, ${policy.cidr4.toLocaleString('en-US')} CIDRs`);
    notes.push(`median of ${ROUNDS} alternating rounds per side; ns per iteration of the loop`);
    printTable({
      title: 'connect() inside vs outside the deploy cgroup, 100,000 CIDRs + 100,000 names loaded',
      head: ['call', 'outside ns', 'inside ns', 'added ns', 'overhead', 'target'],
      rows,
      notes,
    });
  } finally {
    await agent.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});

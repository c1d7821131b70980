import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import pino from 'pino';
import type { AgentStatus } from '@cgfence/proto';
import { Agent } from '../agent/agent';
import { AgentConfig, DEFAULT_CGROUP, DEFAULT_STATE_DIR, defaultHost } from '../agent/agent-config';
import { formatBlockLine } from '../journal/block-log';
import { JournalReader } from '../journal/event-journal';
import { callAgent } from './control-client';
import { parseLabels, RUN_FAILED, runProtected } from './run-command';
import { teardown } from './teardown';

const EXIT_USAGE = 2;

class UsageError extends Error {}

const int = (what: string, min: number, max: number) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${what} must be a whole number from ${min} to ${max}`);
  return n;
};
const collect = (v: string, acc: string[]): string[] => [...acc, v];

/** The first nameserver of /etc/resolv.conf, as HOST:PORT. */
export function defaultUpstream(resolvConf = '/etc/resolv.conf'): string | undefined {
  if (!existsSync(resolvConf)) return undefined;
  const m = /^\s*nameserver\s+(\S+)/m.exec(readFileSync(resolvConf, 'utf8'));
  if (!m?.[1]) return undefined;
  return m[1].includes(':') ? `[${m[1]}]:53` : `${m[1]}:53`;
}

const stateDirOption = () => new Option('--state-dir <dir>', 'the agent state directory (control socket, journal, runs)').default(DEFAULT_STATE_DIR).env('CGFENCE_STATE_DIR');
const json = (cmd: Command): boolean => Boolean(cmd.opts<{ json?: boolean }>().json);

interface StartOptions {
  policyFile: string;
  upstream?: string;
  mode: 'enforce' | 'audit';
  failMode: 'open' | 'closed';
  cgroup: string;
  stateDir: string;
  proxyPort: number;
  host: string;
  cohort?: string;
  cpuMax?: string;
  memoryMax?: string;
  pidsMax?: string;
  heartbeatTimeoutMs: number;
  upstreamTimeoutMs: number;
  logLevel: string;
}

async function startAgent(o: StartOptions): Promise<void> {
  const upstream = o.upstream ?? defaultUpstream();
  if (!upstream) throw new UsageError('no --upstream given and no nameserver in /etc/resolv.conf');
  if (process.getuid?.() !== 0) throw new Error('the agent needs root (cgroups, bpffs and eBPF programs)');
  const config: AgentConfig = {
    policyFile: resolve(o.policyFile),
    upstream,
    mode: o.mode,
    failMode: o.failMode,
    cgroupName: o.cgroup,
    stateDir: resolve(o.stateDir),
    proxyPort: o.proxyPort,
    host: o.host,
    cohort: o.cohort,
    limits: { 'cpu.max': o.cpuMax, 'memory.max': o.memoryMax, 'pids.max': o.pidsMax },
    heartbeatTimeoutMs: o.heartbeatTimeoutMs,
    upstreamTimeoutMs: o.upstreamTimeoutMs,
    logLevel: o.logLevel,
  };
  const logger = pino({ level: o.logLevel, base: { service: 'host-agent', host: o.host } });
  const agent = new Agent(config, logger);
  try {
    await agent.start();
  } catch (err) {
    await agent.stop().catch(() => undefined);
    throw err;
  }
  process.on('SIGHUP', () => agent.reload('SIGHUP'));
  await new Promise<void>((done) => {
    const stop = () => void agent.stop().then(done);
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}

function printStatus(s: AgentStatus): void {
  const lines = [
    `host:       ${s.host} (agent pid ${s.pid}, up since ${s.startedAt})`,
    `cgroup:     ${s.cgroup.path}`,
    `controllers: ${s.cgroup.controllers.join(' ') || '(none)'}; limits: ${Object.entries(s.cgroup.limits).map(([k, v]) => `${k}=${v}`).join(' ') || '(none)'}`,
    ...(s.cgroup.limitsNote ? [`  note: ${s.cgroup.limitsNote}`] : []),
    `programs:   ${s.programs.join(' ')}${s.adoptedPins ? ' (adopted from pins)' : ''}`,
    `pins:       ${s.pinDir}`,
    `policy:     ${s.policy.version} ${s.policy.hash} from ${s.policy.source}, loaded ${s.policy.loadedAt}`,
    `  entries:  ${s.policy.domains} domains, ${s.policy.wildcards} wildcards, ${s.policy.cidr4} IPv4 and ${s.policy.cidr6} IPv6 networks`,
    ...(s.policy.lastError ? [`  LAST RELOAD REJECTED: ${s.policy.lastError}`] : []),
    `mode:       ${s.mode}, fail mode ${s.failMode}`,
    `dns proxy:  127.0.0.1/::1 port ${s.proxy.port} → ${s.proxy.upstream} (${s.proxy.healthy ? 'healthy' : 'UNHEALTHY'})`,
    `runs:       ${s.runs.active} active`,
    'counters:',
    ...Object.entries(s.counters).map(([k, v]) => `  ${k.padEnd(28)} ${v}`),
  ];
  for (const l of lines) process.stdout.write(`${l}\n`);
}

export function buildHostProgram(): Command {
  const program = new Command('cgfence').enablePositionalOptions();
  const agent = program.command('agent').description('the host agent: enforce a blocklist on the deploy cgroup');
  agent
    .command('start', { isDefault: true })
    .description('start the agent (root); `cgfence agent --policy-file FILE` is the same')
    .requiredOption('--policy-file <file>', 'blocklist file: domains, *.wildcards, CIDRs, # comments; reloaded on SIGHUP and on change')
    .option('--upstream <host:port>', 'resolver allowed queries go to (default: first nameserver of /etc/resolv.conf)')
    .addOption(new Option('--mode <mode>', 'enforce blocks; audit only records').choices(['enforce', 'audit']).default('enforce'))
    .addOption(new Option('--fail-mode <mode>', 'with the DNS proxy dead: open stops redirecting DNS, closed lets DNS fail').choices(['open', 'closed']).default('open'))
    .option('--cgroup <name>', 'deploy cgroup name under the cgroup v2 root', DEFAULT_CGROUP)
    .addOption(stateDirOption())
    .option('--proxy-port <port>', 'DNS proxy port on 127.0.0.1 and ::1 (0: any free port)', int('--proxy-port', 0, 65535), 0)
    .option('--host <id>', 'host name in events', defaultHost())
    .option('--cohort <name>', 'cohort label in events')
    .option('--cpu-max <value>', 'cgroup v2 cpu.max of the deploy cgroup, e.g. "50000 100000"')
    .option('--memory-max <value>', 'cgroup v2 memory.max, e.g. 2G')
    .option('--pids-max <value>', 'cgroup v2 pids.max, e.g. 512')
    .option('--heartbeat-timeout-ms <ms>', 'proxy silence before the fail mode applies', int('--heartbeat-timeout-ms', 0, 600_000), 2000)
    .option('--upstream-timeout-ms <ms>', 'upstream answer deadline before SERVFAIL', int('--upstream-timeout-ms', 50, 60_000), 2000)
    .option('--log-level <level>', 'pino log level', 'info')
    .action((o: StartOptions) => startAgent(o));

  agent
    .command('status')
    .option('--json', 'machine-readable JSON output')
    .description('cgroup, programs, policy, mode, proxy health and counters of the running agent')
    .addOption(stateDirOption())
    .action(async (o: { stateDir: string }, self: Command) => {
      const s = await callAgent<AgentStatus>(o.stateDir, { op: 'status' });
      if (json(self)) process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
      else printStatus(s);
    });

  agent
    .command('events')
    .option('--json', 'machine-readable JSON output')
    .description('read the local event journal (blocks, audits, alerts)')
    .addOption(stateDirOption())
    .option('-f, --follow', 'keep printing new events')
    .option('-n, --limit <n>', 'only the newest N', int('--limit', 1, 1_000_000))
    .action(async (o: { stateDir: string; follow?: boolean; limit?: number }, self: Command) => {
      const reader = new JournalReader(o.stateDir);
      const print = (r: Parameters<typeof formatBlockLine>[0]) => process.stdout.write(`${json(self) ? JSON.stringify(r) : formatBlockLine(r)}\n`);
      for (const r of reader.list({ limit: o.limit })) print(r);
      if (!o.follow) return;
      const abort = new AbortController();
      process.once('SIGINT', () => abort.abort());
      process.once('SIGTERM', () => abort.abort());
      for await (const r of reader.follow({ signal: abort.signal })) print(r);
    });

  agent
    .command('teardown')
    .option('--json', 'machine-readable JSON output')
    .description('detach and unpin everything the agent attached and remove its cgroups once empty')
    .option('--cgroup <name>', 'deploy cgroup name', DEFAULT_CGROUP)
    .addOption(stateDirOption())
    .action((o: { cgroup: string; stateDir: string }, self: Command) => {
      const r = teardown(o.cgroup, o.stateDir);
      if (json(self)) return void process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      process.stdout.write(`detached and unpinned ${r.pinDir}${r.detached ? '' : ' (nothing was pinned)'}\n`);
      if (r.busy.length > 0) process.stdout.write(`kept ${r.cgroup}: processes still live in ${r.busy.join(', ')}\n`);
      else process.stdout.write(`removed ${r.cgroup}\n`);
    });

  program
    .command('run')
    .description('run COMMAND in a new run cgroup of the deploy cgroup, protected by the local agent')
    .option('-l, --label <key=value>', 'label of the run (repeatable)', collect, [])
    .addOption(stateDirOption())
    .argument('<command...>', 'the command and its arguments (after --)')
    .passThroughOptions()
    .action(async (command: string[], o: { label: string[]; stateDir: string }) => {
      let labels: Record<string, string>;
      try {
        labels = parseLabels(o.label);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      process.exitCode = await runProtected(o.stateDir, labels, command, (l) => process.stderr.write(`${l}\n`));
    });

  program.exitOverride();
  for (const c of [...program.commands, ...agent.commands]) c.exitOverride();
  return program;
}

/** Entry point for `cgfence agent …` and `cgfence run …`. */
export function cli(): void {
  buildHostProgram()
    .parseAsync(process.argv)
    .catch((err: unknown) => {
      if (err instanceof CommanderError) {
        process.exitCode = err.exitCode === 0 ? 0 : process.argv[2] === 'run' ? RUN_FAILED : EXIT_USAGE;
        return;
      }
      process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = err instanceof UsageError ? EXIT_USAGE : process.argv[2] === 'run' ? RUN_FAILED : 1;
    });
}

if (require.main === module) cli();

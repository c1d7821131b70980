import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import pino from 'pino';
import { DEFAULT_CLIENT_RATE_LIMITS, DEFAULT_UNIX_GUARD_PATHS, SSSD_NSS_SOCKET, sssServesHosts, validateClientRateLimits, validateRefusedDnsPorts, validateUnixGuardPaths, type RateLimit } from '@cgfence/bpf';
import { NatsAuthError, natsConnectOptions } from '@cgfence/nats-auth';
import { compileRedactPatterns, MAX_REDACT_PATTERNS, RedactPatternError, type AgentStatus } from '@cgfence/proto';
import { AgentConfig, DEFAULT_CGROUP, DEFAULT_METRICS_LISTEN, DEFAULT_STATE_DIR, defaultHost, parseMetricsListen } from '../agent/agent-config';
import { DEFAULT_SPOOL_MAX_BYTES } from '../events/spool';
import { FleetConfigError, FleetSettings, parseServers, readServerKeys, resolveHostId, resolveLabels } from '../fleet/fleet-config';
import { enrollHostWithRetry, readEnrollment, readEnrollToken, type Enrollment } from '../fleet/enrollment';
import { formatBlockLine } from '../journal/block-log';
import { JournalReader } from '../journal/event-journal';
import { callAgent } from './control-client';
import { parseLabels, RUN_FAILED, runProtected } from './run-command';
import { teardown } from './teardown';
import { GroupEntry, lookupGroup } from '../runs/user-lookup';
import { PROTECT_LABEL, ProtectCgroupError, protectedPaths } from '../runs/protected-cgroups';
import { findCgroup2Root } from '@cgfence/bpf';

const EXIT_USAGE = 2;

class UsageError extends Error {}

const int = (what: string, min: number, max: number) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${what} must be a whole number from ${min} to ${max}`);
  return n;
};
const collect = (v: string, acc: string[]): string[] => [...acc, v];
/** A byte count: 1048576, 512K, 64M, 1G (K/M/G are powers of 1024; a trailing iB or B is allowed). */
export const byteSize = (what: string, min: number, max: number) => (v: string): number => {
  const m = /^\s*(\d+)\s*(?:([kmg])(?:i?b)?|b)?\s*$/i.exec(v);
  const n = m ? Number(m[1]) * 1024 ** ({ k: 1, m: 2, g: 3 }[(m[2] ?? '').toLowerCase()] ?? 0) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${what} must be a byte count from ${min} to ${max} (e.g. 64M)`);
  return n;
};

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
  policyFile?: string;
  server?: string;
  natsSeed?: string;
  natsCreds?: string;
  natsCa?: string;
  enroll?: string;
  enrollToken?: string;
  enrollTokenFile?: string;
  ca?: string;
  serverKey?: string;
  hostId?: string;
  label: string[];
  labelsFile?: string;
  syncIntervalMs: number;
  reportIntervalMs: number;
  driftCheckMs: number;
  spoolMaxBytes: number;
  upstream?: string;
  mode: 'enforce' | 'audit';
  failMode: 'open' | 'closed';
  cgroup: string;
  stateDir: string;
  proxyPort: number;
  proxyWorkers: number;
  dnsUdpEngine: 'core' | 'node';
  host: string;
  cohort?: string;
  cpuMax?: string;
  memoryMax?: string;
  pidsMax?: string;
  heartbeatTimeoutMs: number;
  upstreamTimeoutMs: number;
  logLevel: string;
  metricsListen: string;
  runGroup?: string;
  protectCgroup: string[];
  refusedDnsPorts: string;
  dnsClientLimit: string;
  dnsRunLimit: string;
  hostsFile: string;
  learnedPerEntry: number;
  resolveTtlMin: number;
  refusedUnixSockets: string;
  unixGuardAttachTypes?: string;
  redactPattern: string[];
}

/**
 * Enrollment (issue 17): with --enroll, enrolls the host unless its state
 * directory already holds an enrollment (so one systemd ExecStart serves the
 * first start and every restart). Returns the enrollment to run with, if any.
 */
async function enrollmentOf(o: StartOptions): Promise<Enrollment | undefined> {
  const stateDir = resolve(o.stateDir);
  try {
    if (o.enroll === undefined) {
      for (const [flag, given] of [['--enroll-token', o.enrollToken], ['--enroll-token-file', o.enrollTokenFile], ['--ca', o.ca]] as const) {
        if (given !== undefined) throw new UsageError(`${flag} needs --enroll URL`);
      }
      return o.server === undefined && o.policyFile === undefined ? readEnrollment(stateDir) : undefined;
    }
    if (o.server !== undefined || o.policyFile !== undefined) throw new UsageError('--enroll excludes --server and --policy-file: the enrollment says where the fleet is');
    if (o.natsSeed !== undefined || o.natsCreds !== undefined || o.serverKey !== undefined) {
      throw new UsageError('--enroll brings the NATS credentials and the server key: drop --nats-seed, --nats-creds and --server-key');
    }
    const existing = readEnrollment(stateDir);
    if (existing) return existing;
    const token = readEnrollToken({ token: o.enrollToken, tokenFile: o.enrollTokenFile });
    let ca: string | undefined;
    if (o.ca !== undefined) {
      try {
        ca = readFileSync(o.ca, 'utf8');
      } catch (err) {
        throw new UsageError(`--ca ${o.ca}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    }
    return await enrollHostWithRetry({ url: o.enroll, token, hostId: resolveHostId(o.hostId), stateDir, ca }, (m) => process.stderr.write(`cgfence agent: ${m}\n`));
  } catch (err) {
    if (err instanceof FleetConfigError) throw new UsageError(err.message);
    throw err;
  }
}

/** An enrollment as fleet settings: its servers, key, creds and CA; labels from the token, then the flags. */
function enrolledSettings(e: Enrollment, o: StartOptions): FleetSettings {
  if (o.hostId !== undefined && o.hostId !== e.hostId) throw new UsageError(`--host-id ${o.hostId}: this host enrolled as ${e.hostId} (state dir ${o.stateDir})`);
  try {
    return {
      servers: e.servers,
      ring: readServerKeys(e.serverKeyFile),
      hostId: e.hostId,
      labels: { ...e.labels, ...resolveLabels({ labelsFile: o.labelsFile, label: o.label, cohort: o.cohort ?? e.labels.cohort }) },
      credsFile: e.credsFile,
      caFile: o.natsCa === undefined ? e.caFile : resolve(o.natsCa),
      syncIntervalMs: o.syncIntervalMs,
      reportIntervalMs: o.reportIntervalMs,
      spoolMaxBytes: o.spoolMaxBytes,
    };
  } catch (err) {
    if (err instanceof FleetConfigError) throw new UsageError(err.message);
    throw err;
  }
}

/** Fleet mode's settings, validated; undefined without --server (or an enrollment). */
function fleetSettings(o: StartOptions, enrollment?: Enrollment): FleetSettings | undefined {
  if (enrollment !== undefined) return enrolledSettings(enrollment, o);
  if (o.server === undefined) {
    for (const [flag, given] of [['--nats-seed', o.natsSeed], ['--nats-creds', o.natsCreds], ['--nats-ca', o.natsCa], ['--server-key', o.serverKey], ['--host-id', o.hostId], ['--labels-file', o.labelsFile]] as const) {
      if (given !== undefined) throw new UsageError(`${flag} needs --server (fleet mode)`);
    }
    if (o.label.length > 0) throw new UsageError('--label needs --server (fleet mode)');
    if (o.policyFile === undefined) {
      throw new UsageError('give --policy-file FILE (local policy) or --server nats://HOST:PORT (policy from the policy server), or --enroll URL --enroll-token TOKEN (join a fleet)');
    }
    return undefined;
  }
  if (o.policyFile !== undefined) {
    throw new UsageError('--policy-file and --server exclude each other: with --server the policy comes from the policy server');
  }
  if (o.serverKey === undefined) throw new UsageError("--server needs --server-key FILE (the policy server's Ed25519 public key, PEM)");
  try {
    const hostId = resolveHostId(o.hostId);
    const seedFile = o.natsSeed === undefined ? undefined : resolve(o.natsSeed);
    const credsFile = o.natsCreds === undefined ? undefined : resolve(o.natsCreds);
    const caFile = o.natsCa === undefined ? undefined : resolve(o.natsCa);
    if (seedFile !== undefined && credsFile !== undefined) throw new UsageError('--nats-seed and --nats-creds exclude each other');
    // Read the credentials now: a bad file is a usage error, not a reconnect loop.
    if (seedFile !== undefined || credsFile !== undefined) natsConnectOptions({ seedFile, credsFile, caFile, hostId });
    return {
      servers: parseServers(o.server),
      ring: readServerKeys(o.serverKey),
      hostId,
      labels: resolveLabels({ labelsFile: o.labelsFile, label: o.label, cohort: o.cohort }),
      seedFile,
      credsFile,
      caFile,
      syncIntervalMs: o.syncIntervalMs,
      reportIntervalMs: o.reportIntervalMs,
      spoolMaxBytes: o.spoolMaxBytes,
    };
  } catch (err) {
    if (err instanceof FleetConfigError) throw new UsageError(err.message);
    if (err instanceof NatsAuthError) throw new UsageError(`${o.natsCreds !== undefined ? '--nats-creds' : o.natsSeed !== undefined ? '--nats-seed' : '--nats-ca'}: ${err.message}`);
    throw err;
  }
}

/** `--run-group NAME|GID`, resolved now: an unknown group stops the agent with a usage error. */
function runGroupOf(name: string | undefined): GroupEntry | undefined {
  if (name === undefined) return undefined;
  const group = lookupGroup(name);
  if (!group) throw new UsageError(`--run-group ${name}: no such group (create it with \`groupadd ${name}\`)`);
  if (group.gid === 0) throw new UsageError(`--run-group ${name}: the root group gives nothing root does not have; name a group of deploy users`);
  return group;
}

/** `--protect-cgroup` values and, in fleet mode, the labels file's `cgfence.protect-cgroups=a,b`. */
function protectCgroupsOf(o: StartOptions, labels: Record<string, string> | undefined): string[] {
  const fromLabels = labels?.[PROTECT_LABEL];
  if (o.protectCgroup.length === 0 && fromLabels === undefined) return [];
  try {
    return protectedPaths([...o.protectCgroup, ...(fromLabels === undefined ? [] : [fromLabels])], findCgroup2Root(), o.cgroup);
  } catch (err) {
    if (err instanceof ProtectCgroupError) throw new UsageError(err.message);
    throw err;
  }
}

/** `--redact-pattern` (repeatable), checked now: a bad one is a usage error naming it. */
function redactPatternsOf(sources: readonly string[] | undefined): string[] {
  try {
    compileRedactPatterns(sources ?? []);
  } catch (err) {
    if (err instanceof RedactPatternError) throw new UsageError(`--redact-pattern: ${err.message}`);
    throw err;
  }
  return [...(sources ?? [])];
}

/** Parses and validates `cgfence agent start`'s options once; a bad one is a UsageError (exit 2) naming the flag. */
export function agentSettings(o: StartOptions, enrollment?: Enrollment): { config: AgentConfig; fleet: FleetSettings | undefined } {
  const fleet = fleetSettings(o, enrollment);
  const upstream = o.upstream ?? defaultUpstream();
  if (!upstream) throw new UsageError('no --upstream given and no nameserver in /etc/resolv.conf');
  let metricsListen: AgentConfig['metricsListen'];
  if (o.proxyWorkers > 1 && o.dnsUdpEngine !== 'node') {
    throw new UsageError(`--proxy-workers ${o.proxyWorkers} needs --dns-udp-engine node: the UDP core answers on a thread of the agent, with no worker processes`);
  }
  try {
    metricsListen = parseMetricsListen(o.metricsListen);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const config: AgentConfig = {
    policyFile: o.policyFile === undefined ? undefined : resolve(o.policyFile),
    fleetServer: fleet?.servers.join(','),
    driftCheckMs: fleet ? o.driftCheckMs : undefined,
    upstream,
    mode: o.mode,
    failMode: o.failMode,
    cgroupName: o.cgroup,
    stateDir: resolve(o.stateDir),
    proxyPort: o.proxyPort,
    proxyWorkers: o.proxyWorkers,
    dnsUdpEngine: o.dnsUdpEngine,
    // Fleet mode: events carry the host id their NATS subjects are named by.
    host: fleet?.hostId ?? o.host,
    cohort: fleet?.labels.cohort ?? o.cohort,
    limits: { 'cpu.max': o.cpuMax, 'memory.max': o.memoryMax, 'pids.max': o.pidsMax },
    heartbeatTimeoutMs: o.heartbeatTimeoutMs,
    upstreamTimeoutMs: o.upstreamTimeoutMs,
    logLevel: o.logLevel,
    metricsListen,
    runGroup: runGroupOf(o.runGroup),
    protectCgroups: protectCgroupsOf(o, fleet?.labels),
    refusedDnsPorts: parseRefusedDnsPorts(o.refusedDnsPorts),
    clientRate: { perProcess: parseRateLimit('--dns-client-limit', o.dnsClientLimit), perRun: parseRateLimit('--dns-run-limit', o.dnsRunLimit) },
    hostsFile: o.hostsFile === 'none' ? undefined : resolve(o.hostsFile),
    learnedPerEntry: o.learnedPerEntry,
    resolveTtlMinSeconds: o.resolveTtlMin,
    refusedUnixSockets: parseRefusedUnixSockets(o.refusedUnixSockets),
    unixGuardAttachTypes: parseUnixGuardAttachTypes(o.unixGuardAttachTypes),
    redactPatterns: redactPatternsOf(o.redactPattern),
  };
  return { config, fleet };
}

async function startAgent(o: StartOptions): Promise<void> {
  // Enrollment first (issue 17): it may make the fleet settings this start runs with.
  const enrollment = await enrollmentOf(o);
  const { config, fleet } = agentSettings(o, enrollment);
  if (process.getuid?.() !== 0) throw new Error('the agent needs root (cgroups, bpffs and eBPF programs)');
  const logger = pino({ level: o.logLevel, base: { service: 'host-agent', host: config.host } });
  // Loaded here, not at the top: `cgfence run` and `cgfence agent status` do not pay for NestJS.
  const { reloadOnSighup, startAgentApp } = await import('../app/agent-app.js');
  let app: Awaited<ReturnType<typeof startAgentApp>>;
  try {
    app = await startAgentApp(config, logger, { fleet });
  } catch (err) {
    // Whatever started (proxy sockets, workers) goes with the process; pins and the cgroup stay, as after any stop.
    process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
  const stopReloading = reloadOnSighup(app, logger);
  await new Promise<void>((done) => {
    const stop = () => {
      stopReloading();
      void app.close().then(done);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}

function unixGuardLine(g: NonNullable<AgentStatus['unixGuard']>): string {
  if (g.state === 'off') return 'off (--refused-unix-sockets none)';
  const paths = (g.paths ?? []).join(' ');
  if (g.state === 'active') return `refusing ${paths}`;
  return `UNAVAILABLE on this kernel (connect_unix needs Linux 6.7+): names resolved through ${paths} are not seen; ${g.reason ?? ''}`;
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
    ...(s.unixGuard ? [`unix guard: ${unixGuardLine(s.unixGuard)}`] : []),
    ...(s.protectedCgroups && s.protectedCgroups.length > 0
      ? [
          'protected cgroups:',
          ...s.protectedCgroups.map(
            (p) => `  ${p.path}${p.unit ? ` (${p.unit})` : ''}: ${p.state}${p.runId ? `, run ${p.runId}` : ''}${p.error ? `: ${p.error}` : ''}`,
          ),
        ]
      : []),
    ...(s.fleet ? fleetLines(s.fleet) : []),
    ...(s.spool ? spoolLines(s.spool) : []),
    'counters:',
    ...Object.entries(s.counters).map(([k, v]) => `  ${k.padEnd(28)} ${v}`),
  ];
  for (const l of lines) process.stdout.write(`${l}\n`);
}

/** The fleet section of `cgfence agent status`. */
export function fleetLines(f: NonNullable<AgentStatus['fleet']>): string[] {
  const labels = Object.entries(f.labels).map(([k, v]) => `${k}=${v}`).join(' ') || '(none)';
  const a = f.applied;
  return [
    'fleet:',
    `  server:   ${f.server} (${f.connected ? 'connected' : 'NOT CONNECTED'})`,
    `  host id:  ${f.hostId}; labels: ${labels}`,
    `  revision: ${f.seenRevision ?? '(none seen)'}${f.target ? `; target: ${f.target}` : ''}${f.auditOverride ? '; AUDIT ordered by the server' : ''}`,
    a
      ? `  applied:  ${a.name} v${a.version} ${a.hash} (blocklist ${a.blocklistId}, revision ${a.revision}, at ${a.appliedAt})`
      : '  applied:  nothing (empty policy)',
    `  boot:     ${f.boot}`,
    ...(f.lastError
      ? [`  LAST UPDATE REJECTED${f.lastError.revision === null ? '' : ` (revision ${f.lastError.revision})`} at ${f.lastError.at}: ${f.lastError.reason}: ${f.lastError.message}`]
      : []),
    f.drift
      ? `  drift:    ${f.drift.drifted ? `DRIFTED: ${f.drift.detail ?? ''}` : 'none'} (checked ${f.drift.checkedAt})`
      : '  drift:    not checked yet',
    f.lastSync
      ? `  sync:     ${f.lastSync.at} ${f.lastSync.ok ? `ok (server at revision ${f.lastSync.revision})` : `FAILED: ${f.lastSync.error}`}`
      : '  sync:     none yet',
  ];
}

/** The spool section of `cgfence agent status`: events on their way to the central history. */
export function spoolLines(p: NonNullable<AgentStatus['spool']>): string[] {
  return [
    'spool:',
    `  pending:  ${p.pending} events, ${p.bytes} of ${p.maxBytes} bytes`,
    `  shipped:  ${p.shipped} since start${p.lastShippedAt ? `, last at ${p.lastShippedAt}` : ''}`,
    `  dropped:  ${p.dropped}${p.dropped > 0 ? ' (SPOOL WAS FULL: the oldest unshipped events were lost)' : ''}`,
    ...(p.lastError ? [`  last error: ${p.lastError.at} ${p.lastError.message}`] : []),
  ];
}

export function buildHostProgram(): Command {
  const program = new Command('cgfence').enablePositionalOptions();
  const agent = program.command('agent').description('the host agent: enforce a blocklist on the deploy cgroup');
  agent
    .command('start', { isDefault: true })
    .description('start the agent (root); `cgfence agent --policy-file FILE` is the same; `--server URL --server-key FILE` takes the policy from the policy server')
    .option('--policy-file <file>', 'blocklist file: domains, *.wildcards, CIDRs, # comments; reloaded on SIGHUP and on change (not with --server)')
    .option('--server <url>', 'fleet mode: NATS URL(s) of the policy server, nats://HOST:PORT (comma-separated for several)')
    .option('--server-key <file>', "fleet mode: the policy server's Ed25519 public key(s), PEM (required with --server)")
    .option('--nats-seed <file>', "fleet mode: this host's NATS nkey seed (SU…); without it the agent connects unauthenticated")
    .option('--nats-creds <file>', 'fleet mode: NATS creds file (user JWT + seed) instead of --nats-seed')
    .option('--nats-ca <file>', "fleet mode: PEM CA the NATS servers' certificates must chain to (TLS)")
    .option('--enroll <url>', 'join a fleet: enroll at this policy server (https://…) with --enroll-token; kept in the state dir, later starts need no flag')
    .option('--enroll-token <token>', 'the join token (cgfence hosts enroll-token create)')
    .option('--enroll-token-file <file>', 'read the join token from a file')
    .option('--ca <file>', "PEM CA of the policy server's HTTPS certificate (with --enroll)")
    .option('--host-id <id>', 'fleet mode: host id (a-z, 0-9, "-", "_"; default: /etc/machine-id)')
    .option('--label <key=value>', 'fleet mode: host label (repeatable)', collect, [])
    .option('--labels-file <file>', 'fleet mode: host labels, key=value lines, # comments')
    .option('--sync-interval-ms <ms>', 'fleet mode: anti-entropy sync with the server (jittered ±20%)', int('--sync-interval-ms', 100, 3_600_000), 30_000)
    .option('--report-interval-ms <ms>', 'fleet mode: heartbeat report to the server', int('--report-interval-ms', 100, 3_600_000), 10_000)
    .option(
      '--spool-max-bytes <bytes>',
      'fleet mode: bound of the disk spool of events not yet shipped (<state-dir>/spool); when full the oldest are dropped',
      byteSize('--spool-max-bytes', 64 * 1024, 1024 ** 4),
      DEFAULT_SPOOL_MAX_BYTES,
    )
    .option('--drift-check-ms <ms>', "fleet mode: compare the kernel's IP maps with the applied policy (0: never)", int('--drift-check-ms', 0, 3_600_000), 30_000)
    .option('--upstream <host:port>', 'resolver allowed queries go to (default: first nameserver of /etc/resolv.conf)')
    .addOption(new Option('--mode <mode>', 'enforce blocks; audit only records').choices(['enforce', 'audit']).default('enforce'))
    .addOption(new Option('--fail-mode <mode>', 'with the DNS proxy dead: open stops redirecting DNS, closed lets DNS fail').choices(['open', 'closed']).default('open'))
    .option('--cgroup <name>', 'deploy cgroup name under the cgroup v2 root', DEFAULT_CGROUP)
    .addOption(stateDirOption())
    .option('--proxy-port <port>', 'DNS proxy port on 127.0.0.1 and ::1 (0: any free port)', int('--proxy-port', 0, 65535), 0)
    .addOption(
      new Option('--dns-udp-engine <engine>', "who does the DNS proxy's UDP: core, a C forwarding core on a thread of the agent; node, JavaScript")
        .choices(['core', 'node'])
        .default('core'),
    )
    .option(
      '--proxy-workers <n>',
      'DNS proxy processes answering UDP with --dns-udp-engine node (TCP stays in the agent); 1: the proxy runs in the agent process',
      int('--proxy-workers', 1, 64),
      1,
    )
    .option('--host <id>', 'host name in events', defaultHost())
    .option('--cohort <name>', 'cohort label in events (fleet mode: the label cohort)')
    .option('--cpu-max <value>', 'cgroup v2 cpu.max of the deploy cgroup, e.g. "50000 100000"')
    .option('--memory-max <value>', 'cgroup v2 memory.max, e.g. 2G')
    .option('--pids-max <value>', 'cgroup v2 pids.max, e.g. 512')
    .option('--heartbeat-timeout-ms <ms>', 'proxy silence before the fail mode applies', int('--heartbeat-timeout-ms', 0, 600_000), 2000)
    .option('--upstream-timeout-ms <ms>', 'upstream answer deadline before SERVFAIL', int('--upstream-timeout-ms', 50, 60_000), 2000)
    .option('--log-level <level>', 'pino log level', 'info')
    .option('--metrics-listen <host:port>', 'Prometheus /metrics, /healthz and /readyz (HTTP; keep it on loopback); none: off', DEFAULT_METRICS_LISTEN)
    .option(
      '--protect-cgroup <path>',
      `an existing cgroup v2 dir (e.g. system.slice/deployd.service) under the same programs (repeatable; fleet mode also reads ${PROTECT_LABEL}=a,b from --labels-file)`,
      collect,
      [],
    )
    .option('--run-group <group>', 'members of this group may use `cgfence run` (control socket root:GROUP 0660); root always can')
    .option('--refused-dns-ports <list>', 'ports other than 53 the deploy cgroup may not reach at all (DoT/DoQ), comma-separated, at most 16; none: no port', '853')
    .option(
      '--dns-client-limit <rate/window>',
      'per process in the deploy cgroup: at most WINDOW UDP queries the DNS proxy has not answered yet, and RATE/s when they go unanswered; over it a send fails (EPERM); off: no limit',
      formatRateLimit(DEFAULT_CLIENT_RATE_LIMITS.perProcess),
    )
    .option('--dns-run-limit <rate/window>', 'the same for all processes of one run (cgroup) together; off: no limit', formatRateLimit(DEFAULT_CLIENT_RATE_LIMITS.perRun))
    .option('--hosts-file <file>', 'hosts file whose entries for listed names get their addresses blocked; none: off', '/etc/hosts')
    .option(
      '--learned-per-entry <n>',
      "most learned addresses one '!resolve' entry may hold (the map's room is split between the entries, each share capped here); beyond it: an alert",
      int('--learned-per-entry', 1, 65_536),
      4096,
    )
    .option('--resolve-ttl-min <seconds>', "floor of the TTL '!resolve' addresses are blocked for (refreshed at 80% of it)", int('--resolve-ttl-min', 1, 3600), 30)
    .option(
      '--refused-unix-sockets <list>',
      'unix sockets of resolving daemons (nscd, systemd-resolved, sssd) the deploy cgroup may not connect to (Linux 6.7+), comma-separated /path or @abstract, at most 32; "default" stands for the built-in list; none: off',
      'default',
    )
    .option(
      '--redact-pattern <regex>',
      `extra secret shape taken out of command lines in events (JavaScript regex, whole match becomes [REDACTED]; repeatable, at most ${MAX_REDACT_PATTERNS})`,
      collect,
      [],
    )
    .addOption(new Option('--unix-guard-attach-types <connect,sendmsg>', 'diagnostics: attach types the unix guard loads with').hideHelp())
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
      for (const p of r.protectedCgroups) process.stdout.write(`detached from protected cgroup ${p}\n`);
      if (r.busy.length > 0) process.stdout.write(`kept ${r.cgroup}: processes still live in ${r.busy.join(', ')}\n`);
      else process.stdout.write(`removed ${r.cgroup}\n`);
    });

  program
    .command('run')
    .description('run COMMAND in a new run cgroup of the deploy cgroup, protected by the local agent')
    .option('-l, --label <key=value>', 'label of the run (repeatable)', collect, [])
    .option('-q, --quiet', 'do not print the run id on stderr at start (CGFENCE_RUN_ID still has it)')
    .option('--user <name>', 'root only: run COMMAND as this user, with its groups (like setpriv --reuid --regid --init-groups)')
    .option('--group <group>', "with --user: this primary group instead of the user's own")
    .addOption(stateDirOption())
    .argument('<command...>', 'the command and its arguments (after --)')
    .passThroughOptions()
    .action(async (command: string[], o: { label: string[]; stateDir: string; quiet?: boolean; user?: string; group?: string }) => {
      let labels: Record<string, string>;
      try {
        labels = parseLabels(o.label);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      process.exitCode = await runProtected(
        { stateDir: o.stateDir, labels, command, quiet: o.quiet, user: o.user, group: o.group },
        (l) => process.stderr.write(`${l}\n`),
      );
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

function formatRateLimit(r: RateLimit | null): string {
  return r === null ? 'off' : `${r.ratePerSecond}/${r.window}`;
}

/** --dns-client-limit / --dns-run-limit: 'RATE/WINDOW' (e.g. 1000/1000) or 'off'. */
function parseRateLimit(flag: string, value: string): RateLimit | null {
  const v = value.trim();
  if (v === 'off') return null;
  const m = /^(\d{1,7})\/(\d{1,7})$/.exec(v);
  const limit = m ? { ratePerSecond: Number(m[1]), window: Number(m[2]) } : { ratePerSecond: NaN, window: NaN };
  try {
    validateClientRateLimits({ perProcess: limit, perRun: null });
  } catch (err) {
    throw new UsageError(`${flag}: ${(err as Error).message.replace('clientRate.perProcess.', '')} (give RATE/WINDOW, e.g. 1000/1000, or off; got ${JSON.stringify(value)})`);
  }
  return limit;
}

/**
 * The built-in list: nscd and systemd-resolved always; sssd's nss socket only
 * where /etc/nsswitch.conf's hosts line names sss (it serves users too, and
 * for them it is the source).
 */
export function defaultRefusedUnixSockets(nsswitchConf: string | undefined): string[] {
  return [...DEFAULT_UNIX_GUARD_PATHS, ...(nsswitchConf !== undefined && sssServesHosts(nsswitchConf) ? [SSSD_NSS_SOCKET] : [])];
}

function readNsswitch(): string | undefined {
  try {
    return readFileSync('/etc/nsswitch.conf', 'utf8');
  } catch {
    return undefined; // no nsswitch.conf: glibc's defaults, which never name sss
  }
}

/** --refused-unix-sockets: 'default', 'none', or paths ('default' among them stands for the built-in list). */
function parseRefusedUnixSockets(value: string): string[] {
  const v = value.trim();
  if (v === 'none') return [];
  const parts = v.split(',').map((p) => p.trim());
  const defaults = parts.includes('default') ? defaultRefusedUnixSockets(readNsswitch()) : [];
  const paths = [...new Set(parts.flatMap((p) => (p === 'default' ? defaults : [p])))];
  try {
    validateUnixGuardPaths(paths);
  } catch (err) {
    throw new UsageError(`--refused-unix-sockets: ${(err as Error).message} (give default, none, or /path|@name[,...]; got ${JSON.stringify(value)})`);
  }
  return paths;
}

/** The hidden --unix-guard-attach-types: 'CONNECT,SENDMSG' attach type numbers. */
function parseUnixGuardAttachTypes(value: string | undefined): { connect: number; sendmsg: number } | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d{1,5}),(\d{1,5})$/.exec(value.trim());
  if (!m) throw new UsageError(`--unix-guard-attach-types: give CONNECT,SENDMSG attach type numbers, got ${JSON.stringify(value)}`);
  return { connect: Number(m[1]), sendmsg: Number(m[2]) };
}

/** --refused-dns-ports: '853,5353' or 'none'. */
function parseRefusedDnsPorts(value: string): number[] {
  const v = value.trim();
  if (v === 'none') return [];
  const ports = v.split(',').map((p) => (/^\d{1,5}$/.test(p.trim()) ? Number(p.trim()) : NaN));
  try {
    validateRefusedDnsPorts(ports);
  } catch (err) {
    throw new UsageError(`--refused-dns-ports: ${(err as Error).message} (give PORT[,PORT...] or none; got ${JSON.stringify(value)})`);
  }
  return ports;
}

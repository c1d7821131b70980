import { mkdirSync, readFileSync, rmSync, unwatchFile, watchFile, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { compareIpPolicy, DataPlane, DataPlaneConfig, ensureBpffs, findCgroup2Root, KernelEvent } from '@cgfence/bpf';
import { AgentStatus, CONTROL_SOCKET, contentHash, ControlRequest, FleetAgentStatus, parseBlocklistText, RunStarted } from '@cgfence/proto';
import type { DnsProxyStats } from '../dns/dns-events';
import { DnsProxy } from '../dns/dns-proxy';
import { type DnsService, ProxyPool } from '../dns/proxy-pool';
import { describeProcess, procfsReader } from '../dns/process-details';
import { BlockLog } from '../journal/block-log';
import { EventJournal } from '../journal/event-journal';
import { alertRecord, JournalRecord, recordFromDnsEvent, recordFromIpBlock, RecordContext } from '../journal/journal-record';
import type { FleetApplyMeta, FleetSink, SinkApplyResult, SinkStatus } from '../fleet/fleet-client';
import type { BlocklistEntry } from '../policy/entry-types';
import { createPolicy, formatPolicyErrors, Policy } from '../policy/policy';
import { RunRegistry } from '../runs/run-registry';
import { endRun, startRun } from '../runs/run-start';
import { PROTECT_POLL_MS, ProtectedCgroups, protectedPinRoot } from '../runs/protected-cgroups';
import type { RunLookup } from '../journal/journal-record';
import type { AgentEvents } from '../events/agent-events';
import { AgentConfig, Mode, PID_FILE, pinDirFor, runningAgentPid } from './agent-config';
import { applyLimits, LimitsReport } from './cgroup-limits';
import { ControlCaller, ControlServer } from './control-server';
import { applyPolicy, PolicyMeta } from './policy-apply';

const HEARTBEAT_MS = 250;
const REAP_MS = 10_000;

/** What the agent needs from its fleet client (FleetClient implements it). */
export interface FleetControl {
  status(): FleetAgentStatus;
  syncNow(): Promise<void>;
}

/** A policy file read and validated, not yet hashed or compiled. */
type PolicyFileResult = { readonly ok: true; readonly entries: readonly BlocklistEntry[] } | { readonly ok: false; readonly message: string };

/** A file has no version number: it is named by its content hash. */
function fileMeta(entries: readonly BlocklistEntry[]): PolicyMeta {
  const hash = contentHash(entries);
  return { version: `file:${hash.slice('sha256:'.length, 'sha256:'.length + 12)}`, hash };
}

/** The policy of an agent that has none yet (fleet mode, before the first bundle). */
export function emptyPolicy(): Policy {
  return createPolicy([], { version: 'none', hash: contentHash([]) });
}

/**
 * One host's agent: the deploy cgroup, the eBPF programs on it, the DNS
 * proxy, the event journal and the control socket, standing on a policy file.
 */
export class Agent {
  private policy!: Policy;
  private policyLoadedAt = new Date();
  private policyError: string | undefined;
  private dataPlane!: DataPlane;
  private proxy!: DnsService;
  private proxyPort = 0;
  private journal!: EventJournal;
  private runs!: RunRegistry;
  private protectedCgroups?: ProtectedCgroups;
  /** Runs, then the synthetic runs of protected cgroups: whom an event's cgroup id belongs to. */
  private readonly lookup: RunLookup = { byCgroupId: (id) => this.runs?.byCgroupId(id) ?? this.protectedCgroups?.byCgroupId(id) };
  private control!: ControlServer;
  private limits!: LimitsReport;
  private timers: NodeJS.Timeout[] = [];
  private readonly blockLog: BlockLog;
  private readonly startedAt = new Date();
  private deployCgroup = '';
  private pinDir = '';
  private proxyHealthy = true;
  private started = false;
  /** The policy server's audit override (fleet mode); undefined: the configured mode. */
  private modeOverride: Mode | undefined;
  private fleet: FleetControl | undefined;
  /** Fleet mode: ships journal records and run summaries to JetStream through the disk spool. */
  private events: AgentEvents | undefined;
  private drift: SinkStatus['drift'] = null;
  private expectedPrograms: string[] = [];
  /** Alerts raised before the journal is open (fleet restore at boot). */
  private earlyAlerts: { message: string; time: Date }[] = [];
  /** Policy applies run one at a time, in the order they were asked for. */
  private applying: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly config: AgentConfig,
    private readonly logger: Logger,
  ) {
    this.blockLog = new BlockLog(logger);
  }

  async start(): Promise<void> {
    const c = this.config;
    mkdirSync(c.stateDir, { recursive: true, mode: 0o700 });
    const running = runningAgentPid(c.stateDir);
    if (running !== undefined && running !== process.pid) throw new Error(`an agent (pid ${running}) is already running with state dir ${c.stateDir}`);
    writeFileSync(join(c.stateDir, PID_FILE), `${process.pid}\n`);

    if (c.policyFile !== undefined) {
      const loaded = this.readPolicy(c.policyFile);
      if (!loaded.ok) throw new Error(loaded.message);
      this.policy = createPolicy(loaded.entries, fileMeta(loaded.entries));
    } else {
      // Fleet mode: the last good bundle if the fleet client restored one, else nothing yet.
      this.policy ??= emptyPolicy();
    }

    const bpffs = ensureBpffs();
    this.deployCgroup = join(findCgroup2Root(), c.cgroupName);
    this.pinDir = pinDirFor(bpffs, c.cgroupName);
    mkdirSync(this.deployCgroup, { recursive: true });
    this.limits = applyLimits(this.deployCgroup, c.limits);
    if (this.limits.note) this.logger.warn(this.limits.note);

    this.journal = new EventJournal({ dir: c.stateDir });
    this.runs = new RunRegistry({ deployCgroup: this.deployCgroup, stateDir: c.stateDir, logger: this.logger });

    const proxyOptions = {
      upstream: c.upstream,
      port: c.proxyPort,
      mode: this.mode,
      policy: this.policy,
      upstreamTimeoutMs: c.upstreamTimeoutMs,
      attribution: { lookup: (port: number, id: number) => this.dataPlane?.lookupDnsOrigin(port, id) },
      addressBlocker: { learn: (addrs: string[], ttl: number) => this.dataPlane?.learnAddresses([...addrs], ttl) },
      logger: this.logger,
    };
    // One proxy in this process, or UDP spread over worker processes (TCP stays here).
    const workers = c.proxyWorkers ?? 1;
    this.proxy = workers > 1 ? new ProxyPool({ ...proxyOptions, workers }) : new DnsProxy(proxyOptions);
    this.proxyPort = (await this.proxy.start()).port;

    this.dataPlane = DataPlane.attach({ cgroupPath: this.deployCgroup, pinDir: this.pinDir, config: this.dataPlaneConfig() });
    if (this.proxy instanceof ProxyPool) this.proxy.setAttributionPinDir(this.pinDir);
    // On the trie builder thread: the proxy already answers meanwhile (and the thread is warm for reloads).
    await this.dataPlane.applyIpPolicyAsync(this.policy.cidrs);
    // attach() stamped the last heartbeat and the timer below first fires in
    // HEARTBEAT_MS: stamp now, so the apply's time does not count against
    // --heartbeat-timeout-ms (the proxy answered all along).
    this.dataPlane.heartbeat();
    this.dataPlane.onEvent((e) => this.onKernelEvent(e));
    this.proxy.onEvent((e) => this.record(recordFromDnsEvent(e, this.recordContext())));

    // With proxy workers, "the proxy lives" means at least one of them does (they answer all UDP).
    this.timers.push(
      setInterval(() => {
        if (!(this.proxy instanceof ProxyPool) || this.proxy.workerPids().length > 0) this.dataPlane.heartbeat();
      }, HEARTBEAT_MS),
    );
    this.timers.push(setInterval(() => this.reap(), REAP_MS));
    // Existing cgroups (--protect-cgroup) under the same programs; those dropped from the configuration are detached.
    const protectedCgroups = new ProtectedCgroups({
      cgroupRoot: findCgroup2Root(),
      paths: c.protectCgroups ?? [],
      sourcePinDir: this.pinDir,
      pinRoot: protectedPinRoot(this.pinDir),
      logger: this.logger,
    });
    this.protectedCgroups = protectedCgroups;
    protectedCgroups.reconcile();
    this.timers.push(setInterval(() => protectedCgroups.reconcile(), PROTECT_POLL_MS));
    this.expectedPrograms = this.dataPlane.attachedPrograms();
    if ((c.driftCheckMs ?? 0) > 0) this.timers.push(setInterval(() => this.checkDrift(), c.driftCheckMs));
    for (const t of this.timers) t.unref();
    this.events?.start({ alert: (m) => this.alert(m), proxy: this.proxy, runs: this.runs });
    this.started = true;
    for (const a of this.earlyAlerts.splice(0)) this.alert(a.message, a.time);
    if ((c.driftCheckMs ?? 0) > 0) this.checkDrift(); // a baseline for status and the first report

    this.control = new ControlServer(join(c.stateDir, CONTROL_SOCKET), (req, caller) => this.onControl(req, caller), { runGroup: c.runGroup });
    await this.control.listen();
    const policyFile = c.policyFile;
    if (policyFile !== undefined) watchFile(policyFile, { interval: 500 }, () => void this.reload('file changed'));

    this.logger.info(
      {
        cgroup: this.deployCgroup,
        adoptedPins: this.dataPlane.adopted,
        proxyPort: this.proxyPort,
        policy: this.policy.version,
        hash: this.policy.hash,
        mode: this.mode,
        failMode: c.failMode,
        source: this.policySource,
      },
      'cgfence agent running',
    );
  }

  /**
   * Re-reads the policy file; a bad file (or one the kernel refuses) keeps the
   * last good policy enforced. In fleet mode: syncs with the server.
   */
  reload(why: string): Promise<boolean> {
    const policyFile = this.config.policyFile;
    if (policyFile === undefined) {
      this.logger.info({ why }, 'reload: asking the policy server for the current desired state');
      void this.fleet?.syncNow().catch((err: unknown) => this.logger.warn({ err }, 'fleet sync failed'));
      return Promise.resolve(true);
    }
    return this.serialized(() => this.reloadFile(policyFile, why));
  }

  private async reloadFile(policyFile: string, why: string): Promise<boolean> {
    if (!this.started) return false;
    const loaded = this.readPolicy(policyFile);
    let message: string | undefined;
    let applied = false;
    if (!loaded.ok) message = loaded.message;
    else {
      let meta: PolicyMeta | undefined;
      try {
        // The kernel's tries start building now; hashing (is it a change at all?) overlaps them.
        applied = await this.applyEntries(loaded.entries, () => {
          meta = fileMeta(loaded.entries);
          return meta.hash === this.policy.hash ? undefined : meta;
        });
      } catch (err) {
        message = `the kernel refused ${meta?.version ?? 'the policy file'}: ${(err as Error).message}`;
      }
    }
    if (message !== undefined) {
      this.policyError = message;
      this.logger.error({ why }, message);
      if (this.started) {
        this.record(
          alertRecord(`policy file rejected, keeping ${this.policy.version} (${this.policy.hash}): ${message}`, this.recordContext(), {
            time: new Date(),
            policy: { version: this.policy.version, hash: this.policy.hash },
          }),
        );
      }
      return false;
    }
    if (applied) this.logger.info({ why, version: this.policy.version, hash: this.policy.hash }, 'policy reloaded');
    return true;
  }

  /**
   * Kernel first, with the kernel's tries built on a worker thread while the
   * matcher compiles here; then the proxy. If the kernel refuses the IP list,
   * nothing changes anywhere (and this throws). False when `meta` declined.
   */
  private async applyEntries(entries: readonly BlocklistEntry[], meta: PolicyMeta | (() => PolicyMeta | undefined)): Promise<boolean> {
    const applied = await applyPolicy(this.dataPlane, entries, meta, (p) => this.proxy.setPolicy(p));
    if (!applied) return false;
    this.policy = applied.policy;
    this.policyLoadedAt = new Date();
    this.policyError = undefined;
    return true;
  }

  /** Runs policy applies one after the other, in call order. */
  private serialized<T>(task: () => Promise<T>): Promise<T> {
    const run = this.applying.then(task, task);
    this.applying = run.catch(() => undefined);
    return run;
  }

  /** status() with the proxy workers' counters asked for now (what `cgfence agent status` shows). */
  async freshStatus(): Promise<AgentStatus> {
    await this.proxy.stats();
    return this.status();
  }

  /** The agent's state; a proxy pool's counters as its workers last sent them (freshStatus() asks them first). */
  status(): AgentStatus {
    const counters: Record<string, string> = {};
    for (const [k, v] of Object.entries(this.dataPlane.counters())) counters[`kernel_${k}`] = v.toString();
    // A pool sums its workers' counters (and those of workers that died).
    for (const [k, v] of Object.entries(this.proxyStatsNow())) counters[`dns_${k}`] = String(v);
    if (this.proxy instanceof ProxyPool) {
      counters['dns_workers'] = String(this.proxy.workerPids().length);
      counters['dns_worker_restarts'] = String(this.proxy.restartCount);
    }
    const kinds = { domain: 0, wildcard: 0, cidr4: 0, cidr6: 0 };
    for (const e of this.policy.entries) kinds[e.kind]++;
    return {
      host: this.config.host,
      pid: process.pid,
      startedAt: this.startedAt.toISOString(),
      cgroup: { path: this.deployCgroup, controllers: this.limits.controllers, limits: this.limits.applied, limitsNote: this.limits.note },
      programs: this.dataPlane.attachedPrograms(),
      adoptedPins: this.dataPlane.adopted,
      pinDir: this.pinDir,
      policy: {
        source: this.policySource,
        version: this.policy.version,
        hash: this.policy.hash,
        domains: kinds.domain,
        wildcards: kinds.wildcard,
        cidr4: kinds.cidr4,
        cidr6: kinds.cidr6,
        loadedAt: this.policyLoadedAt.toISOString(),
        lastError: this.policyError,
      },
      mode: this.mode,
      failMode: this.config.failMode,
      proxy: { port: this.proxyPort, upstream: this.config.upstream, healthy: this.proxyHealthy },
      counters,
      runs: { active: this.runs.list().filter((r) => r.state === 'running').length },
      ...(this.protectedCgroups ? { protectedCgroups: this.protectedCgroups.status() } : {}),
      ...(this.fleet ? { fleet: this.fleet.status() } : {}),
      ...(this.events ? { spool: this.events.status() } : {}),
    };
  }

  // ---- fleet mode -----------------------------------------------------

  /** Wires the fleet client in for status and reload (call before start()). */
  /** Wires the event shipper in (fleet mode; call before start()). */
  attachEvents(events: AgentEvents): void {
    this.events = events;
  }

  attachFleet(fleet: FleetControl): void {
    this.fleet = fleet;
  }

  /** The agent as the FleetClient's sink: apply, mode override, status, alerts. */
  fleetSink(): FleetSink {
    return {
      apply: (text, meta) => this.applyPolicyText(text, meta),
      setModeOverride: (mode) => this.setModeOverride(mode),
      status: () => this.sinkStatus(),
      alert: (message) => this.alert(message),
    };
  }

  /**
   * Parses and applies a bundle's content, all or nothing like a policy file:
   * kernel first, then the DNS proxy. Before start() it only sets the policy
   * the agent starts with (the last good bundle at boot).
   */
  async applyPolicyText(text: string, meta: FleetApplyMeta): Promise<SinkApplyResult> {
    const label = `${meta.name} v${meta.version}`;
    let parsed: ReturnType<typeof parseBlocklistText>;
    try {
      parsed = parseBlocklistText(text);
    } catch (err) {
      return { ok: false, reason: 'malformed', message: `${label}: parser failed: ${(err as Error).message}` };
    }
    if (parsed.errors.length > 0) return { ok: false, reason: 'malformed', message: formatPolicyErrors(label, parsed.errors) };
    // The signed hash covers exactly these bytes: it names the policy.
    const policyMeta = { version: label, hash: meta.hash };
    if (!this.started) {
      this.policy = createPolicy(parsed.entries, policyMeta);
      this.policyLoadedAt = new Date();
      this.policyError = undefined;
      return { ok: true };
    }
    return this.serialized(async (): Promise<SinkApplyResult> => {
      try {
        await this.applyEntries(parsed.entries, policyMeta);
      } catch (err) {
        return { ok: false, reason: 'apply-failed', message: `the kernel refused ${label}: ${(err as Error).message}` };
      }
      this.logger.info({ version: this.policy.version, hash: this.policy.hash, revision: meta.revision }, 'fleet policy applied');
      return { ok: true };
    });
  }

  /** The policy server's audit override: both the kernel and the DNS proxy switch. */
  setModeOverride(mode: Mode | undefined): void {
    this.modeOverride = mode;
    if (!this.started) return;
    this.dataPlane.setConfig(this.dataPlaneConfig());
    this.proxy.setMode(this.mode);
    this.logger.info({ mode: this.mode, override: mode ?? null }, 'mode changed by the policy server');
  }

  /** The proxy's counters without waiting: a pool's as its workers last reported them (each second). */
  private proxyStatsNow(): DnsProxyStats {
    return this.proxy instanceof ProxyPool ? this.proxy.statsSnapshot() : (this.proxy as DnsProxy).stats();
  }

  /** Blocked and audited DNS queries and IP attempts since start (what the block-rate gate compares). */
  private blockEvents(): number {
    if (!this.started) return 0;
    const dns = this.proxyStatsNow();
    const kernel = this.dataPlane.counters();
    return dns.blocked + dns.audited + Number((kernel['ip_blocks'] ?? 0n) + (kernel['ip_audits'] ?? 0n));
  }

  sinkStatus(): SinkStatus {
    let kernel = this.started;
    let detail: string | undefined;
    if (this.started) {
      const attached = this.dataPlane.attachedPrograms();
      const missing = this.expectedPrograms.filter((p) => !attached.includes(p));
      kernel = missing.length === 0;
      if (!kernel) detail = `programs detached: ${missing.join(', ')}`;
    }
    if (!this.proxyHealthy) detail = [detail, 'DNS proxy heartbeat went stale'].filter(Boolean).join('; ');
    return {
      mode: this.mode,
      failMode: this.config.failMode,
      health: { proxy: this.proxyHealthy, kernel, ...(detail ? { detail } : {}) },
      drift: this.drift,
      blocks: this.blockEvents(),
      ...(this.events ? { spool: this.events.report() } : {}),
    };
  }

  /** Compares the kernel's IP maps with what this agent applied; alerts when they part. */
  checkDrift(): SinkStatus['drift'] {
    if (!this.started) return this.drift;
    const applied = this.dataPlane.appliedIpPolicyDigest();
    if (!applied) return this.drift;
    const checkedAt = new Date().toISOString();
    let next: NonNullable<SinkStatus['drift']>;
    try {
      next = { ...compareIpPolicy(applied, this.dataPlane.ipPolicyDigest()), checkedAt };
    } catch (err) {
      next = { drifted: true, detail: `cannot read the kernel's IP maps back: ${(err as Error).message}`, checkedAt };
    }
    const was = this.drift?.drifted ?? false;
    if (next.drifted && (!was || next.detail !== this.drift?.detail)) {
      const message = `IP policy drift: the kernel no longer holds what was applied (${this.policy.version}): ${next.detail}`;
      this.logger.error({ detail: next.detail }, message);
      this.alert(message);
    } else if (!next.drifted && was) {
      this.logger.info('IP policy drift gone: the kernel holds what was applied');
    }
    this.drift = next;
    return next;
  }

  /** Writes an alert to the journal (buffered until the journal is open). */
  alert(message: string, time = new Date()): void {
    if (!this.started) {
      this.earlyAlerts.push({ message, time });
      return;
    }
    this.record(alertRecord(message, this.recordContext(), { time, policy: { version: this.policy.version, hash: this.policy.hash } }));
  }

  /** The mode in force: the server's audit override, else the configured one. */
  get mode(): Mode {
    return this.modeOverride ?? this.config.mode;
  }

  private get policySource(): string {
    return this.config.policyFile ?? `fleet ${this.config.fleetServer ?? '(policy server)'}`;
  }

  private dataPlaneConfig(): DataPlaneConfig {
    const c = this.config;
    return { proxyPort: this.proxyPort, mode: this.mode, failMode: c.failMode, heartbeatTimeoutMs: c.heartbeatTimeoutMs };
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    if (this.config.policyFile !== undefined) unwatchFile(this.config.policyFile);
    this.started = false;
    await this.control?.close();
    await this.proxy?.close();
    // Links and maps stay pinned: IP enforcement outlives the agent.
    this.dataPlane?.close();
    await this.events?.close();
    this.journal?.close();
    rmSync(join(this.config.stateDir, PID_FILE), { force: true });
  }

  /** Reads and validates the policy file (hashing and compiling are the caller's). */
  private readPolicy(policyFile: string): PolicyFileResult {
    let text: string;
    try {
      text = readFileSync(policyFile, 'utf8');
    } catch (err) {
      return { ok: false, message: `cannot read policy file ${policyFile}: ${(err as Error).message}` };
    }
    const parsed = parseBlocklistText(text);
    if (parsed.errors.length > 0) return { ok: false, message: formatPolicyErrors('file', parsed.errors) };
    return { ok: true, entries: parsed.entries };
  }

  private async onControl(req: ControlRequest, caller: ControlCaller): Promise<unknown> {
    switch (req.op) {
      case 'status':
        return this.freshStatus();
      case 'run.start': {
        const started: RunStarted = startRun(this.runs, req, caller);
        this.logger.info({ runId: started.runId, labels: req.labels, command: req.command, pid: caller.pid, uid: started.uid, user: started.user }, 'run started');
        return started;
      }
      case 'run.end': {
        const run = endRun(this.runs, req, caller);
        this.events?.runEnded(run, req.signal, this.policy.version);
        this.logger.info({ runId: run.runId, exitCode: req.exitCode, signal: req.signal }, 'run ended');
        return { runId: run.runId };
      }
      case 'reload':
        if (this.config.policyFile === undefined && this.fleet) {
          await this.fleet.syncNow();
          return { reloaded: true, version: this.policy.version, hash: this.policy.hash, error: this.fleet.status().lastError?.message };
        }
        return { reloaded: await this.reload('control socket'), version: this.policy.version, hash: this.policy.hash, error: this.policyError };
    }
  }

  private onKernelEvent(e: KernelEvent): void {
    const ctx = this.recordContext();
    if (e.kind === 'proxy_down') {
      this.proxyHealthy = false;
      const what = this.config.failMode === 'open' ? 'DNS is not redirected (fail open)' : 'DNS fails (fail closed)';
      this.record(
        alertRecord(`DNS proxy heartbeat stale: ${what}; query to ${e.daddr}:${e.dport}`, ctx, {
          time: new Date(),
          process: describeProcess(e, procfsReader),
          policy: { version: this.policy.version, hash: this.policy.hash },
        }),
      );
      return;
    }
    this.record(
      recordFromIpBlock(
        {
          time: new Date(),
          audited: e.kind === 'ip_audit',
          destination: e.family === 6 ? `[${e.daddr}]:${e.dport}` : `${e.daddr}:${e.dport}`,
          process: describeProcess(e, procfsReader),
          policy: { version: this.policy.version, hash: this.policy.hash },
        },
        ctx,
      ),
    );
  }

  private record(r: JournalRecord): void {
    this.journal.append(r);
    this.blockLog.write(r);
    this.events?.record(r);
  }

  private recordContext(): RecordContext {
    return { host: this.config.host, cohort: this.config.cohort, runs: this.lookup };
  }

  private reap(): void {
    try {
      const reaped = this.runs.reap({ abandonedAfterMs: 60_000 });
      this.events?.reaped(reaped, this.policy.version);
    } catch (err) {
      this.logger.warn({ err }, 'reaping run cgroups failed');
    }
  }
}


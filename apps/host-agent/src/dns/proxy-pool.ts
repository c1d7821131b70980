// The DNS proxy on several cores: N worker processes (node:cluster, the agent
// is the primary) each run a DnsProxy on one UDP socket per listen address
// that the primary owns and shares with all of them, so the kernel spreads
// the datagrams over the workers. TCP (rare: truncated answers, large
// queries) is answered by a DnsProxy in the primary itself, which also keeps
// the policy's '!resolve' names fresh. Workers get the policy, the mode and
// the attribution map's pin dir over IPC and send back events, addresses
// learned on demand and counters. A worker that dies is replaced.
import cluster, { type Worker } from 'node:cluster';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import type { Policy } from '../policy/policy';
import type { DnsPolicyEvent, DnsProxyStats, DnsQueryNotice, ProxyMode } from './dns-events';
import { DnsProxy, type DnsProxyOptions } from './dns-proxy';
import { addStats, type FromWorker, type ToWorker, toWirePolicy, type WirePolicy, type WorkerConfig, zeroStats } from './proxy-pool-protocol';
import { withAgentFlags } from '../agent/agent-launch';

/** The compiled worker entry point, next to this file. */
export const PROXY_WORKER_SCRIPT = join(__dirname, 'proxy-worker.js');

/** What the agent needs of its DNS proxy: one DnsProxy in process, or a ProxyPool. */
export interface DnsService {
  readonly port: number;
  start(): Promise<{ port: number }>;
  /** Resolves once every part of the proxy decides with the new policy. */
  setPolicy(policy: Policy): void | Promise<void>;
  setMode(mode: ProxyMode): void;
  onEvent(listener: (e: DnsPolicyEvent) => void): () => void;
  /** Handled queries (a pool reports those the kernel attributed to a process). */
  onQuery(listener: (n: DnsQueryNotice) => void): () => void;
  stats(): DnsProxyStats | Promise<DnsProxyStats>;
  close(): Promise<void>;
}

/** The proxy's own options the pool passes on (attribution: the primary's TCP proxy; the workers read the pinned map). */
export interface ProxyPoolOptions
  extends Pick<
    DnsProxyOptions,
    'upstream' | 'port' | 'listenAddresses' | 'mode' | 'policy' | 'upstreamTimeoutMs' | 'maxInFlight' | 'resolveTtl' | 'attribution' | 'addressBlocker'
  > {
  /** Worker processes answering UDP (at least 1). */
  readonly workers: number;
  /** Pin dir of the DataPlane whose attribution map the workers read, if already pinned. */
  readonly attributionPinDir?: string;
  readonly logger?: Logger;
  /** Log level of the workers (they log to the same stdout). Default: the logger's level. */
  readonly workerLogLevel?: string;
  /** How long setPolicy waits for the workers' acknowledgement. Default 10 s. */
  readonly policyAckTimeoutMs?: number;
}

interface Slot {
  readonly index: number;
  worker?: Worker;
  ready: boolean;
  startedAt: number;
  failures: number;
  lastStats: DnsProxyStats;
  appliedSeq: number;
  restartTimer?: NodeJS.Timeout;
}

const STATS_TIMEOUT_MS = 1000;

export class ProxyPool implements DnsService {
  private readonly log: Logger;
  private primary: DnsProxy;
  private policy: Policy | undefined;
  private readonly slots: Slot[] = [];
  private readonly listeners = new Set<(e: DnsPolicyEvent) => void>();
  private readonly queryListeners = new Set<(n: DnsQueryNotice) => void>();
  private readonly statsWaiters = new Map<number, { slot: Slot; resolve: () => void }>();
  private readonly ackWaiters = new Set<() => void>();
  private wirePolicy: WirePolicy | undefined;
  private policySeq = 0;
  private mode: ProxyMode;
  private attributionPinDir: string | undefined;
  /** Counters of workers that have exited (so a restart does not lose them). */
  private retired = zeroStats();
  private listenPort = 0;
  private nextStatsId = 1;
  private closing = false;
  private restarts = 0;

  constructor(private readonly options: ProxyPoolOptions) {
    if (!Number.isInteger(options.workers) || options.workers < 1) throw new RangeError(`workers must be an integer >= 1, got ${options.workers}`);
    this.log = options.logger ?? pino({ enabled: false });
    this.mode = options.mode ?? 'enforce';
    this.wirePolicy = options.policy ? toWirePolicy(options.policy) : undefined;
    this.attributionPinDir = options.attributionPinDir;
    this.policy = options.policy;
    this.primary = this.createPrimary();
    for (let i = 0; i < options.workers; i++) this.slots.push({ index: i, ready: false, startedAt: 0, failures: 0, lastStats: zeroStats(), appliedSeq: 0 });
  }

  get port(): number {
    return this.listenPort;
  }

  /** The TCP proxy in this process (a fresh one per start attempt: a DnsProxy does not restart). */
  private createPrimary(): DnsProxy {
    const o = this.options;
    const proxy = new DnsProxy({
      upstream: o.upstream,
      port: o.port,
      listenAddresses: o.listenAddresses,
      mode: this.mode,
      policy: this.policy,
      upstreamTimeoutMs: o.upstreamTimeoutMs,
      maxInFlight: o.maxInFlight,
      resolveTtl: o.resolveTtl,
      attribution: o.attribution,
      addressBlocker: o.addressBlocker,
      logger: this.log,
      udp: false,
    });
    proxy.onEvent((e) => this.emit(this.listeners, e));
    proxy.onQuery((n) => {
      if (n.process !== undefined) this.emit(this.queryListeners, n);
    });
    return proxy;
  }

  /** Worker processes answering UDP right now. */
  workerPids(): number[] {
    return this.slots.flatMap((s) => (s.ready && s.worker?.process.pid !== undefined ? [s.worker.process.pid] : []));
  }

  /** Workers started to replace ones that died. */
  get restartCount(): number {
    return this.restarts;
  }

  /**
   * Listens: TCP here (picking the port when it is 0), then every worker's
   * UDP on that port. If UDP finds the picked port taken, starts over.
   */
  async start(): Promise<{ port: number }> {
    for (let attempt = 1; ; attempt++) {
      if (attempt > 1) this.primary = this.createPrimary();
      const { port } = await this.primary.start();
      this.listenPort = port;
      try {
        await Promise.all(this.slots.map((s) => this.startWorker(s)));
        break;
      } catch (err) {
        await this.stopWorkers();
        await this.primary.close();
        const code = (err as NodeJS.ErrnoException).code;
        if ((this.options.port ?? 0) === 0 && code === 'EADDRINUSE' && attempt < 20) continue;
        throw err;
      }
    }
    this.log.info({ port: this.listenPort, workers: this.slots.length }, 'dns proxy pool listening (UDP in the workers, TCP here)');
    return { port: this.listenPort };
  }

  /** Sends the policy to every worker; resolves when all running ones decide with it (or after the ack timeout). */
  setPolicy(policy: Policy): Promise<void> {
    this.policy = policy;
    this.primary.setPolicy(policy);
    this.wirePolicy = toWirePolicy(policy);
    const seq = ++this.policySeq;
    for (const s of this.slots) this.post(s, { type: 'policy', policy: this.wirePolicy, seq });
    return this.waitApplied(seq);
  }

  setMode(mode: ProxyMode): void {
    this.mode = mode;
    this.primary.setMode(mode);
    for (const s of this.slots) this.post(s, { type: 'mode', mode });
  }

  /** Tells the workers where the DataPlane pinned its maps (after attach): their events then name the process. */
  setAttributionPinDir(pinDir: string): void {
    this.attributionPinDir = pinDir;
    for (const s of this.slots) this.post(s, { type: 'attribution', pinDir });
  }

  onEvent(listener: (e: DnsPolicyEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Handled queries, for the per-run domain list: only those the kernel
   * attributed to a process (the others name no run), so a flood from
   * outside the deploy cgroup costs the workers no IPC. Workers send them
   * (batched per tick) only while someone listens.
   */
  onQuery(listener: (n: DnsQueryNotice) => void): () => void {
    this.queryListeners.add(listener);
    if (this.queryListeners.size === 1) for (const s of this.slots) this.post(s, { type: 'queries', report: true });
    return () => {
      if (!this.queryListeners.delete(listener) || this.queryListeners.size > 0) return;
      for (const s of this.slots) this.post(s, { type: 'queries', report: false });
    };
  }

  /** Counters of the whole pool: the primary's TCP proxy, every worker (asked now; its last answer if it is slow) and workers gone. */
  async stats(): Promise<DnsProxyStats> {
    await this.refreshWorkerStats();
    return this.statsSnapshot();
  }

  /** Each running worker's own counters, asked for now. */
  async workerStats(): Promise<{ pid: number; stats: DnsProxyStats }[]> {
    await this.refreshWorkerStats();
    return this.slots.flatMap((s) => (s.ready && s.worker?.process.pid !== undefined ? [{ pid: s.worker.process.pid, stats: s.lastStats }] : []));
  }

  private async refreshWorkerStats(): Promise<void> {
    await Promise.all(
      this.slots.map(
        (slot) =>
          new Promise<void>((resolve) => {
            if (!slot.ready || !slot.worker) return resolve();
            const id = this.nextStatsId++;
            const timer = setTimeout(() => {
              this.statsWaiters.delete(id);
              resolve();
            }, STATS_TIMEOUT_MS);
            this.statsWaiters.set(id, {
              slot,
              resolve: () => {
                clearTimeout(timer);
                resolve();
              },
            });
            this.post(slot, { type: 'stats', id });
          }),
      ),
    );
  }

  /** The same sum without asking: each worker's counters as it last sent them (it does every second). */
  statsSnapshot(): DnsProxyStats {
    let sum = addStats(this.retired, this.primary.stats());
    for (const s of this.slots) if (s.worker) sum = addStats(sum, s.lastStats);
    return sum;
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const s of this.slots) clearTimeout(s.restartTimer);
    await this.stopWorkers();
    await this.primary.close();
    for (const w of this.ackWaiters) w();
  }

  // ---- workers ----------------------------------------------------------

  private workerConfig(): WorkerConfig {
    const o = this.options;
    return {
      upstream: o.upstream,
      port: this.listenPort,
      listenAddresses: o.listenAddresses ?? ['127.0.0.1', '::1'],
      mode: this.mode,
      policy: this.wirePolicy,
      policySeq: this.policySeq,
      upstreamTimeoutMs: o.upstreamTimeoutMs,
      maxInFlight: o.maxInFlight,
      resolveTtl: o.resolveTtl,
      attributionPinDir: this.attributionPinDir,
      reportQueries: this.queryListeners.size > 0,
      logLevel: o.workerLogLevel ?? (o.logger ? o.logger.level : 'silent'),
      logBase: o.logger ? o.logger.bindings() : {},
    };
  }

  /** Forks the slot's worker and resolves once it listens; rejects (with the bind error's code) if it cannot. */
  private startWorker(slot: Slot): Promise<void> {
    cluster.setupPrimary({
      exec: PROXY_WORKER_SCRIPT,
      args: [],
      // Not the test runner's or the debugger's flags: the worker is a plain process.
      // With the agent's memory flags (cli/agent-launch.ts) even when the pool runs in a process started without them.
      execArgv: withAgentFlags(process.execArgv.filter((a) => !/^--(experimental-)?test|^--inspect/.test(a))),
      serialization: 'advanced',
      silent: false,
    });
    const worker = cluster.fork();
    slot.worker = worker;
    slot.ready = false;
    slot.startedAt = Date.now();
    slot.lastStats = zeroStats();
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (err?: Error): void => {
        if (settled) return;
        settled = true;
        if (err) reject(err);
        else resolve();
      };
      worker.on('message', (m: FromWorker) => {
        if (m.type === 'ready') {
          slot.ready = true;
          settle();
        } else if (m.type === 'failed') {
          settle(Object.assign(new Error(`dns proxy worker ${slot.index}: ${m.message}`), { code: m.code }));
        } else this.onWorkerMessage(slot, m);
      });
      worker.on('exit', (code, signal) => {
        settle(new Error(`dns proxy worker ${slot.index} exited (${signal ?? code}) before listening`));
        this.onWorkerExit(slot, worker, code, signal);
      });
      worker.on('error', (err) => this.log.warn({ err: err.message, worker: slot.index }, 'dns proxy worker channel error'));
      worker.send({ type: 'init', config: this.workerConfig() } satisfies ToWorker);
    });
  }

  private onWorkerMessage(slot: Slot, m: FromWorker): void {
    switch (m.type) {
      case 'events':
        for (const e of m.events) this.emit(this.listeners, e);
        return;
      case 'queries':
        for (const n of m.notices) this.emit(this.queryListeners, n);
        return;
      case 'learn':
        try {
          this.options.addressBlocker?.learn([...m.addrs], m.ttlSeconds, m.entry);
        } catch (err) {
          this.log.warn({ err: (err as Error).message }, 'learning addresses from a dns proxy worker failed');
        }
        return;
      case 'stats': {
        slot.lastStats = m.stats;
        const waiter = this.statsWaiters.get(m.id);
        this.statsWaiters.delete(m.id);
        waiter?.resolve();
        return;
      }
      case 'policy-applied':
        slot.appliedSeq = Math.max(slot.appliedSeq, m.seq);
        for (const w of [...this.ackWaiters]) w();
        return;
      default:
        return;
    }
  }

  private onWorkerExit(slot: Slot, worker: Worker, code: number | null, signal: string | null): void {
    if (slot.worker !== worker) return;
    const wasReady = slot.ready;
    slot.worker = undefined;
    slot.ready = false;
    this.retired = addStats(this.retired, { ...slot.lastStats, inFlight: 0 });
    slot.lastStats = zeroStats();
    for (const [id, w] of this.statsWaiters) {
      if (w.slot === slot) {
        this.statsWaiters.delete(id);
        w.resolve();
      }
    }
    for (const w of [...this.ackWaiters]) w();
    if (this.closing || !wasReady) return;
    // Crashing right after start again and again: back off (up to 10 s).
    slot.failures = Date.now() - slot.startedAt < 5000 ? slot.failures + 1 : 0;
    const delay = Math.min(10_000, 100 * 2 ** slot.failures);
    this.log.error({ worker: slot.index, pid: worker.process.pid, code, signal, restartInMs: delay }, 'dns proxy worker died; starting another');
    slot.restartTimer = setTimeout(() => {
      if (this.closing) return;
      this.restarts++;
      this.startWorker(slot).catch((err: unknown) => {
        this.log.error({ worker: slot.index, err: (err as Error).message }, 'dns proxy worker could not be restarted');
      });
    }, delay);
    slot.restartTimer.unref();
  }

  private waitApplied(seq: number): Promise<void> {
    const done = (): boolean => this.closing || this.slots.every((s) => !s.ready || s.appliedSeq >= seq);
    if (done()) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.ackWaiters.delete(check);
        this.log.warn({ seq }, 'dns proxy workers did not confirm the new policy in time');
        resolve();
      }, this.options.policyAckTimeoutMs ?? 10_000);
      const check = (): void => {
        if (!done()) return;
        clearTimeout(timer);
        this.ackWaiters.delete(check);
        resolve();
      };
      this.ackWaiters.add(check);
    });
  }

  private post(slot: Slot, m: ToWorker): void {
    const w = slot.worker;
    if (!w || !w.isConnected()) return;
    try {
      w.send(m);
    } catch (err) {
      this.log.warn({ err: (err as Error).message, worker: slot.index }, 'cannot reach a dns proxy worker');
    }
  }

  private async stopWorkers(): Promise<void> {
    await Promise.all(
      this.slots.map(async (s) => {
        const w = s.worker;
        if (!w) return;
        const exited = new Promise<void>((r) => (w.isDead() ? r() : w.once('exit', () => r())));
        this.post(s, { type: 'stop' });
        const kill = setTimeout(() => w.process.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(kill);
      }),
    );
  }

  private emit<T>(listeners: ReadonlySet<(value: T) => void>, value: T): void {
    for (const l of listeners) {
      try {
        l(value);
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'dns proxy pool listener threw');
      }
    }
  }
}

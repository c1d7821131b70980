// The agent's side of the fleet protocol: one NATS connection to the policy
// server, kept up for ever, through NestJS's NATS client (ClientNats: the
// requests and events the server's @MessagePattern/@EventPattern handlers
// take). It registers on every (re)connect, takes the signed desired-state
// broadcast (from the broadcast transport, fleet-transport.ts, via submit()),
// asks for it again every sync interval (anti-entropy), fetches bundle content
// in chunks, and hands verified policy text to a FleetSink (the agent's
// PolicyService, or a test double). Whatever it rejects, the
// last good policy stays in force; the last good bundle is kept on disk so a
// rebooted host enforces it before the server is reachable.
import type { KeyObject } from 'node:crypto';
import { hostname, release } from 'node:os';
import type { Logger } from 'pino';
import { ClientNats } from '@nestjs/microservices';
import type { NatsConnection } from '@nats-io/transport-node';
import { firstValueFrom, timeout } from 'rxjs';
import { credsIdentity, replaceCredsJwt } from '@cgfence/nats-auth';
import {
  Applied,
  ApplyError,
  BundleHeader,
  checkContent,
  decodeTransfer,
  ChunkReply,
  ChunkReplySchema,
  ChunkRequest,
  FLEET_SUBJECTS,
  FleetAgentStatus,
  HostInfo,
  HostReport,
  RegisterReply,
  RegisterReplySchema,
  SyncReply,
  SyncReplySchema,
  SyncRequest,
  targetFor,
} from '@cgfence/proto';
import type { ZodType } from 'zod';
import { claimedRevision, evaluateDesired, Evaluation, FleetError, FleetErrorReason } from './evaluate';
import { jittered } from './fleet-config';
import { LastGoodStore } from './last-good';
import { fleetNatsOptions } from './nats-options';

/** What the FleetClient hands over with a policy. */
export interface FleetApplyMeta {
  readonly revision: number;
  readonly blocklistId: string;
  readonly name: string;
  readonly version: number;
  /** The signed content hash ('sha256:…'). */
  readonly hash: string;
}

export type SinkApplyResult = { readonly ok: true } | { readonly ok: false; readonly reason: 'malformed' | 'apply-failed'; readonly message: string };

export interface SinkStatus {
  readonly mode: 'enforce' | 'audit';
  readonly failMode: 'open' | 'closed';
  readonly health: { readonly proxy: boolean; readonly kernel: boolean; readonly detail?: string };
  readonly drift: { readonly drifted: boolean; readonly detail?: string; readonly checkedAt: string } | null;
  /** Block events (blocked or audited, DNS and IP) since the agent started. */
  readonly blocks?: number;
  /** The event spool: events not acked by JetStream yet, and those dropped because it was full. */
  readonly spool?: { readonly pending: number; readonly dropped: number };
}

/**
 * Where verified policy goes: the Agent (kernel first, then the DNS proxy).
 * apply() is all or nothing, like a policy file: on a parse error or a kernel
 * refusal nothing changes. Before the agent runs, apply() only sets the policy
 * it will start with.
 */
export interface FleetSink {
  apply(policyText: string, meta: FleetApplyMeta): SinkApplyResult | Promise<SinkApplyResult>;
  /** 'audit': the server overrides the configured mode; undefined: back to it. */
  setModeOverride(mode: 'audit' | undefined): void;
  status(): SinkStatus;
  /** An alert for the local journal (rejected updates, drift). */
  alert(message: string): void;
}

export interface FleetClientOptions {
  /** NATS URL(s), e.g. 'nats://policy.internal:4222'. */
  readonly servers: string | readonly string[];
  readonly hostId: string;
  /** Host labels; 'cohort' selects cohort assignments and audit overrides. */
  readonly labels: Readonly<Record<string, string>>;
  /** The policy server's public keys by key id (parsePublicKeys). */
  readonly ring: ReadonlyMap<string, KeyObject>;
  readonly sink: FleetSink;
  /** last-good.json and last-good.content go to <stateDir>/fleet. */
  readonly stateDir: string;
  readonly logger: Logger;
  /** nkey seed file; without one (and no credsFile) the agent connects without authentication. */
  readonly seedFile?: string;
  /** NATS creds file (user JWT + seed, from enrollment); not with seedFile. */
  readonly credsFile?: string;
  /** PEM CA the NATS servers' certificates must chain to; set, the connection uses TLS. */
  readonly caFile?: string;
  readonly agentVersion?: string;
  /** Anti-entropy sync interval, jittered ±20%. Default 30 s. */
  readonly syncIntervalMs?: number;
  /** Heartbeat report interval. Default 10 s. */
  readonly reportIntervalMs?: number;
  /** Deadline of each request (register, sync, one chunk). Default 5 s. */
  readonly requestTimeoutMs?: number;
  /** Attempts per chunk before the fetch fails. Default 3. */
  readonly chunkAttempts?: number;
  /** Pause between connection attempts. Default 2 s. */
  readonly reconnectWaitMs?: number;
  readonly clock?: () => Date;
}

type Source = 'broadcast' | 'sync' | 'register';

export const AGENT_CAPABILITIES = ['dns', 'ip', 'resolve', 'audit', 'chunks'] as const;

/** Thrown when bundle content cannot be fetched. */
class FetchError extends Error {}

export class FleetClient {
  private readonly log: Logger;
  private readonly store: LastGoodStore;
  private readonly clock: () => Date;
  private readonly servers: string[];
  private readonly syncIntervalMs: number;
  private readonly reportIntervalMs: number;
  private readonly requestTimeoutMs: number;
  private readonly chunkAttempts: number;
  private readonly reconnectWaitMs: number;
  private readonly cohort: string | undefined;

  private readonly rpc: ClientNats;
  private nc: NatsConnection | undefined;
  private connected = false;
  private registered = false;
  private stopped = true;
  private loop: Promise<void> | undefined;
  private syncTimer: NodeJS.Timeout | undefined;
  private reportTimer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private readonly connectedListeners = new Set<() => void>();
  private readonly connectionListeners = new Set<(nc: NatsConnection) => void>();

  private seenRevision: number | null = null;
  private applied: Applied | null = null;
  private target: string | null = null;
  private auditOverride = false;
  private lastError: ApplyError | null = null;
  private lastSync: FleetAgentStatus['lastSync'] = null;
  private boot = 'not restored yet';

  private pending: { message: unknown; source: Source } | undefined;
  private draining: Promise<void> | undefined;

  constructor(private readonly opts: FleetClientOptions) {
    this.log = opts.logger.child({ component: 'fleet' });
    this.store = new LastGoodStore(opts.stateDir);
    this.clock = opts.clock ?? (() => new Date());
    this.servers = typeof opts.servers === 'string' ? opts.servers.split(',').map((s) => s.trim()).filter(Boolean) : [...opts.servers];
    this.syncIntervalMs = opts.syncIntervalMs ?? 30_000;
    this.reportIntervalMs = opts.reportIntervalMs ?? 10_000;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 5_000;
    this.chunkAttempts = opts.chunkAttempts ?? 3;
    this.reconnectWaitMs = opts.reconnectWaitMs ?? 2_000;
    this.cohort = opts.labels.cohort;
    this.rpc = new ClientNats(
      fleetNatsOptions({
        servers: this.servers,
        hostId: opts.hostId,
        seedFile: opts.seedFile,
        credsFile: opts.credsFile,
        caFile: opts.caFile,
        reconnectWaitMs: this.reconnectWaitMs,
        requestTimeoutMs: this.requestTimeoutMs,
      }),
    );
  }

  // ---- boot -------------------------------------------------------------

  /**
   * Enforces the last good bundle from disk (signatures and content hash
   * checked, expiry not: an expired last-good list beats none). Call before
   * start(), before the agent starts, so the host is protected even when NATS
   * is unreachable. Returns what it did, for the log and status.
   */
  async restoreLastGood(): Promise<{ restored: boolean; message: string }> {
    const loaded = this.store.load(this.opts.ring, this.clock());
    if (!loaded.ok) {
      this.boot = loaded.missing ? 'no last-good bundle: started with an empty policy' : `${loaded.message}; started with an empty policy`;
      if (loaded.missing) this.log.info(this.boot);
      else {
        this.log.error(this.boot);
        this.opts.sink.alert(this.boot);
      }
      return { restored: false, message: this.boot };
    }
    const g = loaded.lastGood;
    const h = g.header;
    for (const e of g.expired) this.log.warn(`enforcing the last good bundle although it has expired: ${e}`);
    const target = targetFor(g.doc, { hostId: this.opts.hostId, cohort: this.cohort, labels: this.opts.labels });
    if (target.audit) this.opts.sink.setModeOverride('audit');
    const meta: FleetApplyMeta = { revision: g.revision, blocklistId: h.blocklistId, name: h.name, version: h.version, hash: h.hash };
    const res = await this.opts.sink.apply(g.text, meta);
    if (!res.ok) {
      if (target.audit) this.opts.sink.setModeOverride(undefined);
      this.boot = `last-good bundle ${h.name} v${h.version} could not be applied (${res.reason}: ${res.message}); started with an empty policy`;
      this.log.error(this.boot);
      this.opts.sink.alert(this.boot);
      return { restored: false, message: this.boot };
    }
    this.seenRevision = g.revision;
    this.applied = { ...meta, appliedAt: g.appliedAt };
    this.target = `${target.reason} (restored)`;
    this.auditOverride = target.audit;
    this.boot = `restored last-good ${h.name} v${h.version} (revision ${g.revision}, applied ${g.appliedAt})${g.expired.length > 0 ? ' although expired' : ''}`;
    this.log.info({ revision: g.revision, blocklist: h.name, version: h.version, hash: h.hash, audit: target.audit }, this.boot);
    return { restored: true, message: this.boot };
  }

  // ---- lifecycle --------------------------------------------------------

  /** Connects in the background (for ever, until stop()); returns at once. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    // (close() drops these listeners: added at each start)
    this.rpc.on('disconnect', (server) => this.onDisconnect(server));
    this.rpc.on('reconnect', (server) => this.onReconnect(server));
    this.loop = this.connectLoop();
    this.scheduleSync();
    this.reportTimer = setInterval(() => this.report(), this.reportIntervalMs);
    this.reportTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.syncTimer);
    clearInterval(this.reportTimer);
    this.wake?.();
    await this.rpc.close().catch(() => undefined);
    await this.draining;
    // A connect() still in flight closes itself when it returns (the loop sees `stopped`).
    await Promise.race([this.loop, new Promise((r) => setTimeout(r, 1000).unref())]);
  }

  /** Resolves once every queued desired-state message has been processed. */
  async idle(): Promise<void> {
    while (this.draining) await this.draining;
  }

  /** Asks the server for the current desired state now (SIGHUP / `reload`). */
  async syncNow(): Promise<void> {
    await (this.registered ? this.sync() : this.register());
    await this.idle();
  }

  status(): FleetAgentStatus {
    return {
      server: this.servers.join(','),
      connected: this.connected,
      hostId: this.opts.hostId,
      labels: { ...this.opts.labels },
      seenRevision: this.seenRevision,
      applied: this.applied,
      target: this.target,
      auditOverride: this.auditOverride,
      lastError: this.lastError,
      drift: this.opts.sink.status().drift,
      lastSync: this.lastSync,
      boot: this.boot,
    };
  }

  hostInfo(): HostInfo {
    return {
      hostId: this.opts.hostId,
      hostname: hostname(),
      labels: { ...this.opts.labels },
      kernel: release(),
      agentVersion: this.opts.agentVersion ?? 'unknown',
      capabilities: [...AGENT_CAPABILITIES],
    };
  }

  /** Queues a desired-state message as if it had arrived (tests, replays). */
  submit(message: unknown, source: Source = 'broadcast'): Promise<void> {
    const queued = this.pending;
    // A newer message supersedes one still waiting; an older one is dropped.
    if (queued === undefined || claimedRevision(message) >= claimedRevision(queued.message)) this.pending = { message, source };
    else this.log.debug({ source, revision: claimedRevision(message) }, 'older desired-state message dropped: a newer one is queued');
    this.draining ??= this.drain().finally(() => (this.draining = undefined));
    return this.idle();
  }

  /** The live NATS connection (the event shipper publishes on it); undefined while disconnected. */
  natsConnection(): NatsConnection | undefined {
    return this.connected ? this.nc : undefined;
  }

  /** Called on every connect and reconnect. Returns the unsubscribe function. */
  onConnected(listener: () => void): () => void {
    this.connectedListeners.add(listener);
    return () => this.connectedListeners.delete(listener);
  }

  /**
   * Called with each new NATS connection (not on a reconnect of the same one,
   * which keeps its subscriptions), before the agent registers: the broadcast
   * transport subscribes there. Returns the unsubscribe function.
   */
  onConnection(listener: (nc: NatsConnection) => void): () => void {
    this.connectionListeners.add(listener);
    return () => this.connectionListeners.delete(listener);
  }

  private notifyConnected(): void {
    for (const l of this.connectedListeners) l();
  }

  // ---- connection -------------------------------------------------------

  private async connectLoop(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      let nc: NatsConnection;
      try {
        nc = (await this.rpc.connect()) as NatsConnection;
      } catch (err) {
        failures++;
        if (failures === 1 || failures % 30 === 0) {
          this.log.warn({ err: (err as Error).message, server: this.servers.join(','), attempts: failures }, 'cannot reach NATS; the last good policy stays in force; retrying');
        }
        await this.pause(this.reconnectWaitMs);
        continue;
      }
      if (this.stopped) break; // stop() closes the client
      failures = 0;
      this.nc = nc;
      this.connected = true;
      this.log.info({ server: nc.getServer(), hostId: this.opts.hostId }, 'connected to NATS');
      for (const l of this.connectionListeners) l(nc);
      void this.register();
      this.notifyConnected();
      const err = await nc.closed();
      this.nc = undefined;
      this.connected = false;
      this.registered = false;
      if (!this.stopped) {
        this.log.warn({ err: err?.message }, 'NATS connection closed; connecting again');
        await this.pause(this.reconnectWaitMs);
      }
    }
  }

  private onDisconnect(server: unknown): void {
    if (this.stopped) return;
    this.connected = false;
    this.registered = false;
    this.log.warn({ server }, 'disconnected from NATS; the last good policy stays in force');
  }

  private onReconnect(server: unknown): void {
    if (this.stopped || !this.nc) return;
    this.connected = true;
    this.log.info({ server }, 'reconnected to NATS');
    void this.register();
    this.notifyConnected();
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.wake = done;
    });
  }

  /** A request to one of the server's @MessagePattern handlers, with a deadline and the reply checked. */
  private async request<T>(subject: string, data: unknown, schema: ZodType<T>): Promise<T> {
    if (!this.nc || !this.connected) throw new Error('not connected to NATS');
    let reply: unknown;
    try {
      reply = await firstValueFrom(this.rpc.send<unknown>(subject, data).pipe(timeout(this.requestTimeoutMs)));
    } catch (err) {
      throw new Error(requestError(subject, err, this.requestTimeoutMs));
    }
    const parsed = schema.safeParse(reply);
    if (!parsed.success) throw new Error(`unexpected reply on ${subject}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    return parsed.data;
  }

  private async register(): Promise<void> {
    if (!this.connected) return;
    let reply: RegisterReply;
    try {
      reply = await this.request(FLEET_SUBJECTS.register(this.opts.hostId), this.hostInfo(), RegisterReplySchema);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'register with the policy server failed; retrying at the next sync');
      return;
    }
    this.registered = true;
    this.log.info({ hostId: this.opts.hostId, labels: this.opts.labels }, 'registered with the policy server');
    if (reply.message) await this.submit(reply.message, 'register');
    // The server learns at once what this host enforces (a restored last-good bundle, say).
    this.report();
  }

  private scheduleSync(): void {
    if (this.stopped) return;
    this.syncTimer = setTimeout(() => {
      void (this.registered ? this.sync() : this.register()).finally(() => this.scheduleSync());
    }, jittered(this.syncIntervalMs));
    this.syncTimer.unref();
  }

  private async sync(): Promise<void> {
    if (!this.connected) return;
    const nats = await this.natsIdentity();
    const req: SyncRequest = { hostId: this.opts.hostId, seenRevision: this.seenRevision, ...(nats ? { nats } : {}) };
    let reply: SyncReply;
    try {
      reply = await this.request(FLEET_SUBJECTS.sync(this.opts.hostId), req, SyncReplySchema);
    } catch (err) {
      this.lastSync = { at: this.clock().toISOString(), ok: false, error: (err as Error).message };
      this.log.warn({ err: (err as Error).message }, 'sync with the policy server failed');
      return;
    }
    this.lastSync = { at: this.clock().toISOString(), ok: true, revision: reply.revision };
    if (reply.natsJwt !== undefined) await this.renewCredentials(reply.natsJwt);
    if (reply.message) await this.submit(reply.message, 'sync');
  }

  /** With JWT credentials (an enrollment's creds file): this host's user key and the key that signed its JWT. */
  private async natsIdentity(): Promise<SyncRequest['nats']> {
    if (this.opts.credsFile === undefined) return undefined;
    try {
      return await credsIdentity(this.opts.credsFile);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'cannot read the NATS creds file');
      return undefined;
    }
  }

  /**
   * A signing key rotation (issue 17): the server handed a JWT signed by the
   * account's new key. It goes into the creds file (read on every connect),
   * then the connection is made again with it, so the old key can be retired.
   */
  private async renewCredentials(jwt: string): Promise<void> {
    try {
      await replaceCredsJwt(this.opts.credsFile!, jwt);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'the renewed NATS JWT was not taken');
      return;
    }
    this.log.info('NATS credentials renewed (account signing key rotation); reconnecting with them');
    await this.nc?.reconnect().catch((err: Error) => this.log.warn({ err: err.message }, 'reconnecting with the renewed NATS credentials failed; the next reconnect uses them'));
  }

  // ---- applying ---------------------------------------------------------

  private async drain(): Promise<void> {
    for (let next = this.pending; next !== undefined; next = this.pending) {
      this.pending = undefined;
      try {
        await this.process(next.message, next.source);
      } catch (err) {
        // process() handles its own failures; this is a bug guard so the queue never stalls.
        this.log.error({ err }, 'processing a desired-state message failed unexpectedly');
      }
    }
  }

  private async process(message: unknown, source: Source): Promise<void> {
    const ev: Evaluation = evaluateDesired(message, {
      ring: this.opts.ring,
      now: this.clock(),
      host: { hostId: this.opts.hostId, cohort: this.cohort, labels: this.opts.labels },
      seenRevision: this.seenRevision,
      applied: this.applied,
    });
    switch (ev.kind) {
      case 'ignore':
        this.log.debug({ source, revision: ev.revision }, `desired state ignored: ${ev.why}`);
        if (source === 'broadcast' && ev.revision !== undefined && this.seenRevision !== null && ev.revision < this.seenRevision) {
          this.log.warn({ source, revision: ev.revision, seenRevision: this.seenRevision }, ev.why);
        }
        return;
      case 'reject':
        this.rejected(ev.error, source);
        return;
      case 'keep':
        this.keep(ev, source);
        return;
      case 'apply':
        await this.applyBundle(ev, source);
        return;
    }
  }

  /** A new revision that changes no content: the mode may change, the bundle stays. */
  private keep(ev: Extract<Evaluation, { kind: 'keep' }>, source: Source): void {
    this.setAudit(ev.target.audit);
    this.seenRevision = ev.revision;
    this.target = ev.header ? ev.target.reason : `no bundle assigned by revision ${ev.revision}`;
    this.lastError = null;
    if (ev.header && ev.bundle && this.applied) {
      this.applied = { ...this.applied, revision: ev.revision };
      this.persist({ revision: ev.revision, desired: ev.desired, bundle: ev.bundle, appliedAt: this.applied.appliedAt });
    } else if (!ev.header && this.applied) {
      this.log.warn({ revision: ev.revision }, `revision ${ev.revision} assigns this host no bundle; keeping ${this.applied.name} v${this.applied.version} in force`);
    }
    this.log.info({ source, revision: ev.revision, audit: ev.target.audit, target: this.target }, 'desired state accepted (bundle unchanged)');
    this.report();
  }

  private async applyBundle(ev: Extract<Evaluation, { kind: 'apply' }>, source: Source): Promise<void> {
    const h = ev.header;
    let encoded: Uint8Array;
    try {
      encoded = ev.inline ?? (await this.fetchContent(h));
    } catch (err) {
      if (this.stopped) return; // shutting down mid-fetch: nothing to report
      this.rejected({ revision: ev.revision, reason: 'fetch-failed', message: (err as Error).message, final: false }, source);
      return;
    }
    // Decode (never past the signed size), then the signed hash of the canonical text.
    const decoded = decodeTransfer(h, encoded);
    const text = decoded.ok ? checkContent(h, decoded.value) : decoded;
    if (!text.ok) {
      this.rejected({ revision: ev.revision, reason: text.reason, message: `${text.message}${ev.inline ? ' (inline content)' : ''}`, final: true }, source);
      return;
    }
    const content = (decoded as { value: Uint8Array }).value;
    const meta: FleetApplyMeta = { revision: ev.revision, blocklistId: h.blocklistId, name: h.name, version: h.version, hash: h.hash };
    // Loosen before, tighten after: audit goes on before the new list, enforce only once it is in.
    const wasAudit = this.auditOverride;
    if (ev.target.audit) this.setAudit(true);
    const res = await this.opts.sink.apply(text.value, meta);
    if (!res.ok) {
      this.setAudit(wasAudit);
      this.rejected({ revision: ev.revision, reason: res.reason, message: res.message, final: res.reason === 'malformed' }, source);
      return;
    }
    this.setAudit(ev.target.audit);
    const appliedAt = this.clock().toISOString();
    this.applied = { ...meta, appliedAt };
    this.seenRevision = ev.revision;
    this.target = ev.target.reason;
    this.lastError = null;
    this.persist({ revision: ev.revision, desired: ev.desired, bundle: ev.bundle, appliedAt }, content);
    this.log.info(
      { source, revision: ev.revision, blocklist: h.name, version: h.version, hash: h.hash, entries: h.entries, audit: ev.target.audit, target: this.target },
      `applied ${h.name} v${h.version} (revision ${ev.revision})`,
    );
    this.report();
  }

  private setAudit(audit: boolean): void {
    if (audit === this.auditOverride) return;
    this.opts.sink.setModeOverride(audit ? 'audit' : undefined);
    this.auditOverride = audit;
    this.log.info({ audit }, audit ? 'policy server put this host in audit mode' : 'policy server audit override lifted');
  }

  private persist(record: Parameters<LastGoodStore['save']>[0], content?: Uint8Array): void {
    try {
      this.store.save(record, content);
    } catch (err) {
      this.log.error({ err: (err as Error).message, dir: this.store.dir }, 'cannot write the last-good bundle; a reboot would not restore it');
    }
  }

  private rejected(e: FleetError, source: Source): void {
    const at = this.clock().toISOString();
    const repeat = this.lastError !== null && this.lastError.reason === e.reason && this.lastError.revision === e.revision && this.lastError.message === e.message;
    this.lastError = { revision: e.revision, reason: e.reason, message: e.message, at };
    if (e.final && e.revision !== null && (this.seenRevision === null || e.revision > this.seenRevision)) this.seenRevision = e.revision;
    const kept = this.applied ? `${this.applied.name} v${this.applied.version} (revision ${this.applied.revision})` : 'the empty policy';
    const text = `fleet update${e.revision === null ? '' : ` revision ${e.revision}`} rejected (${e.reason}), keeping ${kept}: ${e.message}`;
    if (repeat) {
      this.log.debug({ source, reason: e.reason, revision: e.revision }, text);
    } else {
      this.log.error({ source, reason: e.reason, revision: e.revision }, text);
      this.opts.sink.alert(text);
    }
    this.report();
  }

  /** Fetches every chunk of the encoded content in order, each with a deadline and retries. */
  private async fetchContent(h: BundleHeader): Promise<Uint8Array> {
    const subject = FLEET_SUBJECTS.bundle(this.opts.hostId);
    const parts: Buffer[] = [];
    let bytes = 0;
    const started = Date.now();
    for (let index = 0; index < h.chunks; index++) {
      const req: ChunkRequest = { hash: h.hash, index };
      let reply: ChunkReply | undefined;
      let lastErr = '';
      for (let attempt = 1; attempt <= this.chunkAttempts && reply === undefined; attempt++) {
        if (this.stopped) throw new FetchError('agent stopping');
        try {
          const r = await this.request(subject, req, ChunkReplySchema);
          if (r.hash !== h.hash || r.index !== index) throw new Error(`reply is chunk ${r.index} of ${r.hash}`);
          reply = r;
        } catch (err) {
          lastErr = (err as Error).message;
          this.log.warn({ hash: h.hash, index, attempt, err: lastErr }, 'bundle chunk request failed');
        }
      }
      if (reply === undefined) {
        throw new FetchError(`bundle ${h.name} v${h.version}: chunk ${index + 1} of ${h.chunks} not fetched after ${this.chunkAttempts} attempts: ${lastErr}`);
      }
      const data = Buffer.from(reply.data, 'base64');
      bytes += data.length;
      if (bytes > h.transferBytes) throw new FetchError(`bundle ${h.name} v${h.version}: chunks carry more than the ${h.transferBytes} bytes the header says`);
      parts.push(data);
    }
    this.log.info({ hash: h.hash, chunks: h.chunks, bytes, encoding: h.encoding, ms: Date.now() - started }, `fetched ${h.name} v${h.version}`);
    return new Uint8Array(Buffer.concat(parts, bytes));
  }

  // ---- reports ----------------------------------------------------------

  buildReport(): HostReport {
    const s = this.opts.sink.status();
    return {
      hostId: this.opts.hostId,
      seenRevision: this.seenRevision,
      applied: this.applied,
      lastError: this.lastError,
      mode: s.mode,
      failMode: s.failMode,
      health: s.health,
      drift: s.drift,
      labels: { ...this.opts.labels },
      ...(s.blocks !== undefined ? { blocks: s.blocks } : {}),
      ...(s.spool !== undefined ? { spool: { pending: s.spool.pending, dropped: s.spool.dropped } } : {}),
      sentAt: this.clock().toISOString(),
    };
  }

  /** The heartbeat report: an event for the server's @EventPattern handler. */
  private report(): void {
    if (!this.nc || !this.connected || this.stopped) return;
    try {
      this.rpc.emit(FLEET_SUBJECTS.report(this.opts.hostId), this.buildReport()).subscribe({
        error: (err: unknown) => this.log.warn({ err: (err as Error)?.message ?? String(err) }, 'report to the policy server failed'),
      });
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'report to the policy server failed');
    }
  }
}

/** A failed request as one line: a timeout, the server's error (it replies with {message}), or the transport's. */
function requestError(subject: string, err: unknown, timeoutMs: number): string {
  if (err instanceof Error && err.name === 'TimeoutError') return `no reply on ${subject} within ${timeoutMs} ms`;
  if (err instanceof Error) return err.message;
  const message = typeof err === 'object' && err !== null && typeof (err as { message?: unknown }).message === 'string' ? (err as { message: string }).message : JSON.stringify(err);
  return `policy server: ${message}`;
}

export type { FleetErrorReason };

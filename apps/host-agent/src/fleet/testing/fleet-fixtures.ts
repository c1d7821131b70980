// Test doubles for the fleet protocol: a policy server's signing key and
// document builders, a stand-in policy server on a real NATS connection
// (register/sync/bundle in NestJS's wire format, broadcasts), and a FleetSink
// that records what the FleetClient hands it.
import { generateKeyPairSync, KeyObject } from 'node:crypto';
import type { NatsConnection, Msg, Subscription } from '@nats-io/transport-node';
import pino from 'pino';
import { NatsRequestJSONDeserializer } from '@nestjs/microservices';
import { NatsRecordSerializer } from '@nestjs/microservices/serializers/index.js';
import {
  Assignment,
  AuditDirective,
  BUNDLE_KIND,
  BundleHeader,
  canonicalText,
  ChunkRequest,
  DESIRED_KIND,
  DesiredDocument,
  DesiredMessage,
  encodeTransfer,
  FLEET_SUBJECTS,
  HostInfo,
  HostReport,
  INLINE_CONTENT_BYTES,
  parseBlocklistText,
  parsePublicKeys,
  RollbackOrder,
  sha256Tag,
  SignedDocument,
  signDocument,
  SyncRequest,
} from '@cgfence/proto';
import type { FleetApplyMeta, FleetSink, SinkApplyResult, SinkStatus } from '../fleet-client';
import { DesiredStateController } from '../desired-state.controller';
import type { FleetClient } from '../fleet-client';
import { FleetBroadcastTransport } from '../fleet-transport';

export const quietLogger = pino({ level: process.env.CGFENCE_TEST_LOG ?? 'silent' });

export interface SigningKey {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly pem: string;
}

export function signingKey(): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privateKey, publicKey, pem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

export function ringOf(...keys: SigningKey[]): Map<string, KeyObject> {
  return parsePublicKeys(keys.map((k) => k.pem).join('\n'));
}

const hour = 3600_000;
export const inAnHour = (): string => new Date(Date.now() + hour).toISOString();
export const anHourAgo = (): string => new Date(Date.now() - hour).toISOString();

export interface Bundle {
  readonly header: BundleHeader;
  readonly signed: SignedDocument;
  /** The canonical text. */
  readonly content: Buffer;
  /** What travels inline and in chunks (header.encoding). */
  readonly encoded: Buffer;
}

/** A signed bundle of `text` (canonical blocklist text). */
export function makeBundle(
  key: SigningKey,
  o: {
    text: string;
    version: number;
    blocklistId?: string;
    name?: string;
    chunkBytes?: number;
    expiresAt?: string;
    entries?: number;
    encoding?: 'gzip' | 'identity';
  },
): Bundle {
  const content = Buffer.from(o.text, 'utf8');
  const encoding = o.encoding ?? 'gzip';
  const encoded = encodeTransfer(encoding, content);
  const chunkBytes = o.chunkBytes ?? 512 * 1024;
  const header: BundleHeader = {
    kind: BUNDLE_KIND,
    blocklistId: o.blocklistId ?? 'bl-1',
    name: o.name ?? 'prod-deny',
    version: o.version,
    hash: sha256Tag(content),
    entries: o.entries ?? parseBlocklistText(o.text).entries.length,
    bytes: content.length,
    encoding,
    transferBytes: encoded.length,
    chunkBytes,
    chunks: Math.ceil(encoded.length / chunkBytes),
    issuedAt: new Date().toISOString(),
    expiresAt: o.expiresAt ?? inAnHour(),
  };
  return { header, signed: signDocument(header, key.privateKey), content, encoded };
}

export function makeDesired(
  key: SigningKey,
  o: {
    revision: number;
    baseline: Bundle | null;
    assignments?: (Omit<Assignment, 'bundle'> & { bundle: Bundle })[];
    audit?: Partial<AuditDirective>;
    rollback?: RollbackOrder | null;
    expiresAt?: string;
  },
): { doc: DesiredDocument; signed: SignedDocument } {
  const doc: DesiredDocument = {
    kind: DESIRED_KIND,
    revision: o.revision,
    issuedAt: new Date().toISOString(),
    expiresAt: o.expiresAt ?? inAnHour(),
    baseline: o.baseline?.signed ?? null,
    assignments: (o.assignments ?? []).map((a) => ({ ...a, bundle: a.bundle.signed })),
    audit: { fleet: o.audit?.fleet ?? false, cohorts: o.audit?.cohorts ?? [] },
    rollback: o.rollback ?? null,
  };
  return { doc, signed: signDocument(doc, key.privateKey) };
}

/** The broadcast message; small bundles travel inline as the server does. */
export function makeMessage(desired: SignedDocument, bundles: Bundle[], o: { inline?: boolean } = {}): DesiredMessage {
  const inline: Record<string, string> = {};
  for (const b of bundles) if ((o.inline ?? true) && b.encoded.length <= INLINE_CONTENT_BYTES) inline[b.header.hash] = b.encoded.toString('base64');
  return { desired, inline };
}

/** `n` distinct domains, as canonical text: about 30 bytes a line. */
export function domainsText(n: number, prefix = 'blocked'): string {
  return canonicalText(parseBlocklistText(Array.from({ length: n }, (_, i) => `${prefix}-${i}.example.com`).join('\n')).entries);
}

interface Recorded<T> {
  readonly subject: string;
  readonly reply: string | undefined;
  readonly data: T;
}

/**
 * The policy server's NATS side, as the agent sees it: answers register,
 * sync and bundle requests with Nest reply packets and records reports.
 */
/** A NestJS NATS packet: a request (with an id) or an event. */
interface Packet<T> {
  readonly pattern: string;
  readonly data: T;
  readonly id?: string;
}

export class StandInServer {
  current: DesiredMessage | null = null;
  currentRevision = 0;
  readonly bundles = new Map<string, Bundle>();
  readonly registers: Recorded<HostInfo>[] = [];
  readonly syncs: Recorded<SyncRequest>[] = [];
  readonly chunkRequests: Recorded<ChunkRequest>[] = [];
  readonly reports: Recorded<HostReport>[] = [];
  /** Return true to leave a chunk request unanswered (a lost reply). */
  dropChunk: (req: ChunkRequest, attempt: number) => boolean = () => false;
  /** Rewrite the bytes of a chunk (tampering in transit). */
  tamperChunk: (req: ChunkRequest, data: Buffer) => Buffer = (_r, d) => d;
  /** false: requests go unanswered (the policy server is down). */
  answering = true;
  /** Delay before each chunk reply. */
  chunkDelayMs = 0;
  private readonly subs: Subscription[] = [];
  private readonly deserializer = new NatsRequestJSONDeserializer();
  private readonly serializer = new NatsRecordSerializer();

  constructor(readonly nc: NatsConnection) {
    this.subs.push(nc.subscribe('cgf.agent.*.register', { callback: (_e, m) => this.onRegister(m) }));
    this.subs.push(nc.subscribe('cgf.agent.*.sync', { callback: (_e, m) => this.onSync(m) }));
    this.subs.push(nc.subscribe('cgf.agent.*.bundle', { callback: (_e, m) => this.onBundle(m) }));
    this.subs.push(nc.subscribe('cgf.agent.*.report', { callback: (_e, m) => this.onReport(m) }));
  }

  /** Makes `message` current (register and sync hand it out) without broadcasting it. */
  setCurrent(message: DesiredMessage, revision: number, bundles: Bundle[] = []): void {
    this.current = message;
    this.currentRevision = revision;
    for (const b of bundles) this.bundles.set(b.header.hash, b);
  }

  /** Makes `message` current and broadcasts it. */
  async broadcast(message: DesiredMessage, revision: number, bundles: Bundle[] = []): Promise<void> {
    this.setCurrent(message, revision, bundles);
    this.nc.publish(FLEET_SUBJECTS.desired, JSON.stringify(message));
    await this.nc.flush();
  }

  /** Publishes raw bytes on the broadcast subject (tampered or foreign messages). */
  async publishRaw(message: unknown): Promise<void> {
    this.nc.publish(FLEET_SUBJECTS.desired, JSON.stringify(message));
    await this.nc.flush();
  }

  lastReport(): HostReport | undefined {
    return this.reports.at(-1)?.data;
  }

  async close(): Promise<void> {
    if (this.nc.isClosed()) return;
    for (const s of this.subs.splice(0)) s.unsubscribe();
    await this.nc.close();
  }

  /** A request or event as the server's NATS transport reads it (Nest's own deserializer). */
  private packet<T>(m: Msg): Packet<T> & Recorded<T> {
    const p = this.deserializer.deserialize(m, { channel: m.subject }) as Packet<T>;
    if (p.pattern !== m.subject) throw new Error(`packet pattern ${p.pattern} is not the subject ${m.subject}`);
    return { ...p, subject: m.subject, reply: m.reply };
  }

  /** A reply as the server's NATS transport writes it (Nest's own serializer). */
  private respond(m: Msg, id: string | undefined, response: unknown): void {
    if (!this.answering) return;
    m.respond(this.serializer.serialize({ id, response, isDisposed: true }).data);
  }

  private onRegister(m: Msg): void {
    const p = this.packet<HostInfo>(m);
    this.registers.push(p);
    this.respond(m, p.id, { message: this.answering ? this.current : null });
  }

  private onSync(m: Msg): void {
    const p = this.packet<SyncRequest>(m);
    this.syncs.push(p);
    const behind = p.data.seenRevision === null || p.data.seenRevision < this.currentRevision;
    this.respond(m, p.id, { message: behind ? this.current : null, revision: this.currentRevision });
  }

  private onBundle(m: Msg): void {
    const p = this.packet<ChunkRequest>(m);
    this.chunkRequests.push(p);
    if (this.chunkDelayMs > 0) setTimeout(() => this.answerBundle(m, p), this.chunkDelayMs);
    else this.answerBundle(m, p);
  }

  private answerBundle(m: Msg, p: Packet<ChunkRequest>): void {
    const attempt = this.chunkRequests.filter((r) => r.data.hash === p.data.hash && r.data.index === p.data.index).length;
    if (this.dropChunk(p.data, attempt)) return;
    const b = this.bundles.get(p.data.hash);
    if (!this.answering) return;
    if (!b) {
      m.respond(this.serializer.serialize({ id: p.id, err: { message: `no bundle ${p.data.hash}` }, isDisposed: true }).data);
      return;
    }
    const size = b.header.chunkBytes;
    const data = this.tamperChunk(p.data, b.encoded.subarray(p.data.index * size, (p.data.index + 1) * size));
    this.respond(m, p.id, { hash: p.data.hash, index: p.data.index, data: data.toString('base64') });
  }

  private onReport(m: Msg): void {
    const p = this.packet<HostReport>(m);
    if (p.id !== undefined) throw new Error('a report is an event: it carries no id');
    this.reports.push(p);
  }
}

/** A FleetSink that parses like the agent and records everything. */
export class RecordingSink implements FleetSink {
  readonly applies: { text: string; meta: FleetApplyMeta }[] = [];
  readonly alerts: string[] = [];
  readonly modes: ('audit' | undefined)[] = [];
  override: 'audit' | undefined;
  /** Set to make the next apply fail as the kernel would. */
  failNext: string | undefined;
  constructor(readonly configuredMode: 'enforce' | 'audit' = 'enforce') {}

  get current(): { text: string; meta: FleetApplyMeta } | undefined {
    return this.applies.at(-1);
  }

  apply(text: string, meta: FleetApplyMeta): SinkApplyResult {
    const parsed = parseBlocklistText(text);
    if (parsed.errors.length > 0) return { ok: false, reason: 'malformed', message: `${parsed.errors.length} bad lines, first: ${parsed.errors[0]!.reason}` };
    if (this.failNext !== undefined) {
      const message = this.failNext;
      this.failNext = undefined;
      return { ok: false, reason: 'apply-failed', message };
    }
    this.applies.push({ text, meta });
    return { ok: true };
  }

  setModeOverride(mode: 'audit' | undefined): void {
    this.override = mode;
    this.modes.push(mode);
  }

  status(): SinkStatus {
    return {
      mode: this.override ?? this.configuredMode,
      failMode: 'open',
      health: { proxy: true, kernel: true },
      drift: { drifted: false, checkedAt: new Date().toISOString() },
    };
  }

  alert(message: string): void {
    this.alerts.push(message);
  }
}

/**
 * A FleetClient outside the agent's Nest application takes broadcasts as the
 * agent does: the broadcast transport on its connection, handing each message
 * to the DesiredStateController. Close the returned transport when done.
 */
export function receiveBroadcasts(fc: FleetClient): FleetBroadcastTransport {
  const transport = new FleetBroadcastTransport().useConnectionsOf(fc);
  const controller = new DesiredStateController(fc);
  transport.addHandler(FLEET_SUBJECTS.desired, (message: unknown) => controller.desired(message), true);
  transport.listen((err) => {
    if (err) throw err;
  });
  return transport;
}

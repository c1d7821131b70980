// Protocol-only host agents for the fleet-convergence benchmark: each one has
// its own NATS connection, registers, listens to the broadcast, verifies the
// signed document, bundle and content exactly as the real agent does, and
// reports what it "applied" — no kernel, no DNS proxy.
// Run by fleet-convergence.bench.ts through child_process.fork; talks to it
// over IPC: {type:'ready'} once every agent registered.
import type { NatsConnection } from '@nats-io/transport-node';
import { Logger } from '@nestjs/common';
import { ClientNats } from '@nestjs/microservices';
import { firstValueFrom, timeout } from 'rxjs';
import {
  Applied,
  checkBundle,
  checkContent,
  checkDesired,
  ChunkReply,
  decodeTransfer,
  DesiredMessage,
  DesiredMessageSchema,
  FLEET_SUBJECTS,
  HostReport,
  parsePublicKeys,
  RegisterReply,
  targetFor,
} from '@cgfence/proto';

interface Args {
  natsUrl: string;
  first: number;
  count: number;
  publicKeyPem: string;
  cohorts: number;
}

const args = JSON.parse(process.argv[2] ?? '{}') as Args;
const ring = parsePublicKeys(args.publicKeyPem);

/**
 * On real hosts every agent checks signatures and hashes on its own CPU, all
 * at the same time. Here a thousand agents share one process and one core,
 * so each distinct document is checked once per process and the verdict
 * shared; its cost is measured (verifyMs) and reported beside the results.
 */
const verdicts = new Map<string, unknown>();
const verifyMs: number[] = [];
function once<T>(key: string, check: () => T): T {
  if (verdicts.has(key)) return verdicts.get(key) as T;
  const t0 = performance.now();
  const v = check();
  verifyMs.push(performance.now() - t0);
  verdicts.set(key, v);
  return v;
}

class SimAgent {
  private rpc!: ClientNats;
  private nc!: NatsConnection;
  private seen: number | null = null;
  private applied: Applied | null = null;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    readonly hostId: string,
    readonly cohort: string,
  ) {}

  async start(): Promise<void> {
    // As the agent does: NestJS's NATS client against the server's @MessagePattern handlers.
    this.rpc = new ClientNats({ servers: args.natsUrl.split(','), inboxPrefix: FLEET_SUBJECTS.inboxPrefix(this.hostId), name: this.hostId, maxReconnectAttempts: -1 });
    this.nc = (await this.rpc.connect()) as NatsConnection;
    this.nc.subscribe(FLEET_SUBJECTS.desired, {
      callback: (_err, msg) => {
        const parsed = DesiredMessageSchema.safeParse(msg.json());
        if (parsed.success) this.enqueue(parsed.data);
      },
    });
    const reply = await firstValueFrom(
      this.rpc
        .send<RegisterReply>(FLEET_SUBJECTS.register(this.hostId), {
          hostId: this.hostId,
          hostname: `${this.hostId}.sim`,
          labels: { cohort: this.cohort },
          kernel: 'sim',
          agentVersion: 'sim',
          capabilities: ['dns', 'ip'],
        })
        .pipe(timeout(60_000)),
    );
    if (reply.message) this.enqueue(reply.message);
    await this.queue;
  }

  private enqueue(m: DesiredMessage): void {
    this.queue = this.queue.then(() => this.apply(m)).catch((err: unknown) => {
      process.stderr.write(`${this.hostId}: ${String(err)}\n`);
    });
  }

  private async apply(m: DesiredMessage): Promise<void> {
    const d = once(`d:${m.desired.signature}`, () => checkDesired(m.desired, ring, new Date(), null));
    if (!d.ok) throw new Error(`${d.reason}: ${d.message}`);
    if (this.seen !== null && d.value.revision <= this.seen) return;
    const target = targetFor(d.value, { hostId: this.hostId, cohort: this.cohort });
    if (target.bundle) {
      const bundle = target.bundle;
      const h = once(`b:${bundle.signature}`, () => checkBundle(bundle, ring, new Date(), null, null));
      if (!h.ok) throw new Error(`${h.reason}: ${h.message}`);
      if (this.applied && this.applied.blocklistId === h.value.blocklistId && h.value.version < this.applied.version && d.value.rollback?.toVersion !== h.value.version) {
        throw new Error(`older-version: ${h.value.version}`);
      }
      if (this.applied?.hash !== h.value.hash) {
        const header = h.value;
        const inline = m.inline[header.hash];
        if (inline !== undefined) {
          const c = once(`c:${header.hash}`, () => {
            const decoded = decodeTransfer(header, Buffer.from(inline, 'base64'));
            return decoded.ok ? checkContent(header, decoded.value) : decoded;
          });
          if (!c.ok) throw new Error(`${c.reason}: ${c.message}`);
        } else {
          const parts: Buffer[] = [];
          for (let i = 0; i < h.value.chunks; i++) {
            const subject = FLEET_SUBJECTS.bundle(this.hostId);
            const r = await firstValueFrom(this.rpc.send<ChunkReply>(subject, { hash: h.value.hash, index: i }).pipe(timeout(30_000)));
            parts.push(Buffer.from(r.data, 'base64'));
          }
          const decoded = decodeTransfer(header, Buffer.concat(parts));
          const c = decoded.ok ? checkContent(header, decoded.value) : decoded;
          if (!c.ok) throw new Error(`${c.reason}: ${c.message}`);
        }
      }
      this.applied = { revision: d.value.revision, blocklistId: h.value.blocklistId, name: h.value.name, version: h.value.version, hash: h.value.hash, appliedAt: new Date().toISOString() };
    }
    this.seen = d.value.revision;
    const report: HostReport = {
      hostId: this.hostId,
      seenRevision: this.seen,
      applied: this.applied,
      lastError: null,
      mode: target.audit ? 'audit' : 'enforce',
      failMode: 'open',
      health: { proxy: true, kernel: true },
      drift: null,
      sentAt: new Date().toISOString(),
    };
    this.rpc.emit(FLEET_SUBJECTS.report(this.hostId), report);
  }

  async close(): Promise<void> {
    await this.rpc?.close();
  }
}

async function main(): Promise<void> {
  // Thousands of NATS clients: Nest's client logs a line for each one's every status change (20,000 at the end of a run).
  Logger.overrideLogger(['error', 'warn']);
  const agents: SimAgent[] = [];
  for (let i = args.first; i < args.first + args.count; i++) agents.push(new SimAgent(`sim-${String(i).padStart(5, '0')}`, `c${i % args.cohorts}`));
  // Register in waves so the server sees a fleet coming up, not one burst.
  for (let i = 0; i < agents.length; i += 100) await Promise.all(agents.slice(i, i + 100).map((a) => a.start()));
  process.send?.({ type: 'ready', count: agents.length });
  process.on('message', (m: { type?: string }) => {
    if (m.type === 'verify-cost') process.send?.({ type: 'verify-cost', ms: verifyMs });
    if (m.type === 'stop') void Promise.all(agents.map((a) => a.close())).then(() => process.exit(0));
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`sim-agents failed: ${String(err)}\n`);
  process.exit(1);
});

import { Controller, Inject } from '@nestjs/common';
import { Ctx, EventPattern, MessagePattern, NatsContext, Payload } from '@nestjs/microservices';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { ZodType } from 'zod';
import {
  ChunkReply,
  ChunkRequestSchema,
  HostInfoSchema,
  HostReportSchema,
  hostOfSubject,
  RegisterReply,
  SERVER_PATTERNS,
  SyncReply,
  SyncRequestSchema,
} from '@cgfence/proto';
import { DomainError } from '../common/errors';
import { LOGGER } from '../common/logger';
import { HostsService } from '../hosts/hosts.service';
import { Metrics } from '../metrics/metrics.service';
import { DesiredStateService } from './desired-state.service';
import { HostCredentialsService } from './host-credentials.service';

/**
 * What agents ask over NATS (NestJS's NATS transport, one queue group across
 * replicas). The host id is taken from the subject, which NATS permissions
 * let only that host publish to; a body naming another host is refused.
 */
@Controller()
export class FleetGateway {
  constructor(
    private readonly hosts: HostsService,
    private readonly desired: DesiredStateService,
    private readonly credentials: HostCredentialsService,
    private readonly metrics: Metrics,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  @MessagePattern(SERVER_PATTERNS.register)
  async register(@Payload() data: unknown, @Ctx() ctx: NatsContext): Promise<RegisterReply> {
    const info = this.parse('register', ctx, HostInfoSchema, data);
    await this.hosts.register(info, randomUUID());
    this.metrics.agentMessages.inc({ kind: 'register', outcome: 'ok' });
    const current = await this.desired.current();
    return { message: current?.message ?? null };
  }

  @MessagePattern(SERVER_PATTERNS.sync)
  async sync(@Payload() data: unknown, @Ctx() ctx: NatsContext): Promise<SyncReply> {
    const req = this.parse('sync', ctx, SyncRequestSchema, data);
    await this.hosts.seen(req.hostId);
    const current = await this.desired.current();
    const natsJwt = await this.credentials.renewed(req.hostId, req.nats);
    this.metrics.agentMessages.inc({ kind: 'sync', outcome: 'ok' });
    const renewal = natsJwt === undefined ? {} : { natsJwt };
    if (!current) return { message: null, revision: 0, ...renewal };
    const behind = req.seenRevision === null || req.seenRevision < current.revision;
    return { message: behind ? current.message : null, revision: current.revision, ...renewal };
  }

  @MessagePattern(SERVER_PATTERNS.bundle)
  async bundle(@Payload() data: unknown, @Ctx() ctx: NatsContext): Promise<ChunkReply> {
    const req = this.parse('bundle', ctx, ChunkRequestSchema, data);
    const reply = await this.desired.chunk(req.hash, req.index);
    this.metrics.agentMessages.inc({ kind: 'bundle', outcome: 'ok' });
    return reply;
  }

  @EventPattern(SERVER_PATTERNS.report)
  async report(@Payload() data: unknown, @Ctx() context: unknown): Promise<void> {
    const ctx = context as NatsContext;
    try {
      const r = this.parse('report', ctx, HostReportSchema, data);
      const recorded = await this.hosts.report(r, randomUUID());
      this.metrics.agentMessages.inc({ kind: 'report', outcome: recorded ? 'ok' : 'unregistered' });
    } catch (err) {
      // An event has nobody to answer: log it, never crash the handler.
      this.logger.warn({ err: (err as Error).message, subject: ctx.getSubject() }, 'agent report refused');
    }
  }

  private parse<T>(kind: string, ctx: NatsContext, schema: ZodType<T>, data: unknown): T {
    const subjectHost = hostOfSubject(ctx.getSubject());
    const parsed = schema.safeParse(data);
    if (!parsed.success || subjectHost === undefined) {
      this.metrics.agentMessages.inc({ kind, outcome: 'invalid' });
      const why = parsed.success ? `subject ${ctx.getSubject()} names no valid host` : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
      throw new DomainError('validation.failed', `${kind}: ${why}`);
    }
    const bodyHost = (parsed.data as { hostId?: unknown }).hostId;
    if (bodyHost !== undefined && bodyHost !== subjectHost) {
      this.metrics.agentMessages.inc({ kind, outcome: 'invalid' });
      throw new DomainError('validation.failed', `${kind}: the message names host ${String(bodyHost)} but came from ${subjectHost}`);
    }
    return parsed.data;
  }
}

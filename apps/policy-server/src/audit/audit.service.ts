import { Injectable } from '@nestjs/common';
import type { AuditRecord } from '@cgfence/proto';
import { DomainError } from '../common/errors';
import { StoredEvent } from '../event-store/event-store';
import { EventStore } from '../event-store/event-store.service';

/** Fields worth showing of each event's data; secrets (token hashes) never appear. */
function summarise(e: StoredEvent): Record<string, unknown> {
  const data = (e.data ?? {}) as Record<string, unknown>;
  const { secretHash: _secret, ...rest } = data;
  return rest;
}

export interface AuditQuery {
  limit?: string;
  before?: string;
  actor?: string;
  stream?: string;
}

/** Who did what, newest first, straight from the event store. */
@Injectable()
export class AuditService {
  constructor(private readonly store: EventStore) {}

  async list(q: AuditQuery): Promise<{ records: AuditRecord[]; next: string | null }> {
    const limit = q.limit === undefined ? 100 : Number(q.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
      throw new DomainError('validation.failed', `limit must be a whole number from 1 to 1000, got "${q.limit}"`);
    }
    if (q.before !== undefined && !/^\d+$/.test(q.before)) {
      throw new DomainError('validation.failed', `before must be an event position (a whole number), got "${q.before}"`);
    }
    const events = await this.store.readBackwards({
      limit,
      beforePosition: q.before === undefined ? undefined : BigInt(q.before),
      actor: q.actor,
      streamPrefix: q.stream,
    });
    const records = events.map((e) => ({
      position: e.position.toString(),
      time: e.metadata.time,
      actor: e.metadata.actor,
      type: e.type,
      stream: e.streamId,
      correlationId: e.metadata.correlationId,
      summary: summarise(e),
    }));
    const last = records[records.length - 1];
    return { records, next: records.length === limit && last ? last.position : null };
  }
}

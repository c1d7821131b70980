import { Injectable } from '@nestjs/common';
import type { AuditPage, AuditQuery } from '@cgfence/proto';
import { StoredEvent } from '../event-store/event-store';
import { EventStore } from '../event-store/event-store.service';

/** Fields worth showing of each event's data; secrets (token hashes) never appear. */
function summarise(e: StoredEvent): Record<string, unknown> {
  const data = (e.data ?? {}) as Record<string, unknown>;
  const { secretHash: _secret, ...rest } = data;
  return rest;
}

/** Who did what, newest first, straight from the event store. */
@Injectable()
export class AuditService {
  constructor(private readonly store: EventStore) {}

  /** `q` is validated at the edge (AuditQuery: limit 1–1000, before an event position). */
  async list(q: AuditQuery): Promise<AuditPage> {
    const limit = q.limit ?? 100;
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

import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import { DomainError } from '../common/errors';
import { EventMetadata, NewEvent, StoredEvent } from './event-store';

interface EventRow {
  global_position: string;
  stream_id: string;
  stream_version: number;
  event_type: string;
  data: unknown;
  metadata: EventMetadata;
  recorded_at: Date;
}

const UNIQUE_VIOLATION = '23505';

function toStored(r: EventRow): StoredEvent {
  return {
    position: BigInt(r.global_position),
    streamId: r.stream_id,
    streamVersion: r.stream_version,
    type: r.event_type,
    data: r.data,
    metadata: r.metadata,
    recordedAt: r.recorded_at,
  };
}

/**
 * Append-only event store in PostgreSQL with per-stream optimistic
 * concurrency: an append names the stream version it expects; if another
 * writer got there first the append fails with `stream.conflict` and nothing
 * is written (the caller's transaction rolls back).
 */
@Injectable()
export class EventStore {
  constructor(private readonly db: DataSource) {}

  async readStream(streamId: string, m: EntityManager = this.db.manager): Promise<StoredEvent[]> {
    const rows: EventRow[] = await m.query(
      `select * from events where stream_id = $1 order by stream_version`,
      [streamId],
    );
    return rows.map(toStored);
  }

  async streamVersion(streamId: string, m: EntityManager = this.db.manager): Promise<number> {
    const rows: { v: number | null }[] = await m.query(`select max(stream_version) as v from events where stream_id = $1`, [streamId]);
    return rows[0]?.v ?? 0;
  }

  /**
   * Appends `events` after version `expectedVersion` (0 for a new stream).
   * Must run inside the caller's transaction (`m`).
   */
  async append(
    streamId: string,
    expectedVersion: number,
    events: readonly NewEvent[],
    metadata: EventMetadata,
    m: EntityManager,
  ): Promise<StoredEvent[]> {
    if (events.length === 0) return [];
    const actual = await this.streamVersion(streamId, m);
    if (actual !== expectedVersion) {
      throw new DomainError('stream.conflict', `stream ${streamId} is at version ${actual}, expected ${expectedVersion}; reload and retry`);
    }
    const stored: StoredEvent[] = [];
    try {
      for (const [i, e] of events.entries()) {
        const rows: EventRow[] = await m.query(
          `insert into events (stream_id, stream_version, event_type, data, metadata)
           values ($1, $2, $3, $4, $5) returning *`,
          [streamId, expectedVersion + i + 1, e.type, JSON.stringify(e.data), JSON.stringify(metadata)],
        );
        stored.push(toStored(rows[0] as EventRow));
      }
    } catch (err) {
      if ((err as { code?: string }).code === UNIQUE_VIOLATION) {
        throw new DomainError('stream.conflict', `stream ${streamId} was written concurrently past version ${expectedVersion}; reload and retry`);
      }
      throw err;
    }
    return stored;
  }

  /** Events after `afterPosition`, oldest first, at most `limit`. */
  async readAll(afterPosition: bigint, limit: number, m: EntityManager = this.db.manager): Promise<StoredEvent[]> {
    const rows: EventRow[] = await m.query(
      `select * from events where global_position > $1 order by global_position limit $2`,
      [afterPosition.toString(), limit],
    );
    return rows.map(toStored);
  }

  /** Newest first, for the audit log. */
  async readBackwards(
    filter: { beforePosition?: bigint; actor?: string; streamPrefix?: string; limit: number },
    m: EntityManager = this.db.manager,
  ): Promise<StoredEvent[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.beforePosition !== undefined) {
      params.push(filter.beforePosition.toString());
      where.push(`global_position < $${params.length}`);
    }
    if (filter.actor !== undefined) {
      params.push(filter.actor);
      where.push(`metadata->>'actor' = $${params.length}`);
    }
    if (filter.streamPrefix !== undefined) {
      params.push(`${filter.streamPrefix.replace(/[\\%_]/g, '\\$&')}%`);
      where.push(`stream_id like $${params.length}`);
    }
    params.push(filter.limit);
    const rows: EventRow[] = await m.query(
      `select * from events ${where.length ? `where ${where.join(' and ')}` : ''}
       order by global_position desc limit $${params.length}`,
      params,
    );
    return rows.map(toStored);
  }
}

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

  /** Current version of each stream (absent: 0). */
  async streamVersions(streamIds: readonly string[], m: EntityManager = this.db.manager): Promise<Map<string, number>> {
    const rows: { stream_id: string; v: number }[] = await m.query(
      `select stream_id, max(stream_version) as v from events where stream_id = any($1) group by stream_id`,
      [streamIds],
    );
    return new Map(rows.map((r) => [r.stream_id, r.v]));
  }

  /**
   * Appends to many streams in one statement (agents' reports arrive by the
   * thousand). Each stream must be at its expected version; if any is not,
   * nothing is written and `stream.conflict` is thrown, as for `append`.
   */
  async appendMany(
    batch: readonly { streamId: string; expectedVersion: number; events: readonly NewEvent[]; metadata: EventMetadata }[],
    m: EntityManager,
  ): Promise<StoredEvent[]> {
    const items = batch.filter((b) => b.events.length > 0);
    if (items.length === 0) return [];
    if (new Set(items.map((b) => b.streamId)).size !== items.length) throw new Error('appendMany: one entry per stream');
    const at = await this.streamVersions(items.map((b) => b.streamId), m);
    const streams: string[] = [];
    const versions: number[] = [];
    const types: string[] = [];
    const data: string[] = [];
    const metadata: string[] = [];
    for (const b of items) {
      const actual = at.get(b.streamId) ?? 0;
      if (actual !== b.expectedVersion) {
        throw new DomainError('stream.conflict', `stream ${b.streamId} is at version ${actual}, expected ${b.expectedVersion}; reload and retry`);
      }
      b.events.forEach((e, i) => {
        streams.push(b.streamId);
        versions.push(b.expectedVersion + i + 1);
        types.push(e.type);
        data.push(JSON.stringify(e.data));
        metadata.push(JSON.stringify(b.metadata));
      });
    }
    try {
      const rows: EventRow[] = await m.query(
        `insert into events (stream_id, stream_version, event_type, data, metadata)
         select s, v, t, d::jsonb, md::jsonb from unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[]) with ordinality as x(s, v, t, d, md, n)
         order by n
         returning *`,
        [streams, versions, types, data, metadata],
      );
      return rows.map(toStored).sort((a, b) => (a.position < b.position ? -1 : 1));
    } catch (err) {
      if ((err as { code?: string }).code === UNIQUE_VIOLATION) {
        throw new DomainError('stream.conflict', `one of ${items.length} streams was written concurrently; reload and retry`);
      }
      throw err;
    }
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

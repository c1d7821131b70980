import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';

export interface OutboxMessage {
  readonly subject: string;
  /** JetStream message id: publishing the same id twice has no effect. */
  readonly msgId: string;
  readonly payload: Uint8Array;
}

export interface PendingMessage extends OutboxMessage {
  readonly id: string;
  readonly attempts: number;
}

/** The outbox table: written inside a command's transaction, drained by the relay. */
@Injectable()
export class OutboxRepository {
  constructor(private readonly db: DataSource) {}

  /** Must run inside the transaction of the events the message follows from. */
  async add(m: EntityManager, msg: OutboxMessage): Promise<void> {
    await m.query(`insert into outbox (subject, msg_id, payload) values ($1, $2, $3) on conflict (msg_id) do nothing`, [
      msg.subject,
      msg.msgId,
      Buffer.from(msg.payload),
    ]);
  }

  /**
   * Claims up to `limit` unpublished rows (SKIP LOCKED: rows another replica
   * holds are passed over), hands them to `publish` in id order, and marks
   * the ones it returns as published, all in one transaction. A row whose
   * publish failed keeps its lock until the transaction ends and is retried.
   */
  async drain(limit: number, publish: (batch: PendingMessage[]) => Promise<{ published: string[]; failed: { id: string; error: string }[] }>): Promise<number> {
    return this.db.transaction(async (m) => {
      const rows: { id: string; subject: string; msg_id: string; payload: Buffer; attempts: number }[] = await m.query(
        `select id, subject, msg_id, payload, attempts from outbox where published_at is null order by id limit $1 for update skip locked`,
        [limit],
      );
      if (rows.length === 0) return 0;
      const result = await publish(rows.map((r) => ({ id: String(r.id), subject: r.subject, msgId: r.msg_id, payload: r.payload, attempts: r.attempts })));
      if (result.published.length > 0) await m.query(`update outbox set published_at = now(), attempts = attempts + 1 where id = any($1::bigint[])`, [result.published]);
      for (const f of result.failed) await m.query(`update outbox set attempts = attempts + 1, last_error = $2 where id = $1`, [f.id, f.error]);
      return result.published.length;
    });
  }

  async pending(): Promise<number> {
    const rows: { n: string }[] = await this.db.query(`select count(*) as n from outbox where published_at is null`);
    return Number(rows[0]?.n ?? 0);
  }

  /** Published rows older than `days` are of no further use. */
  async prune(days: number): Promise<void> {
    await this.db.query(`delete from outbox where published_at < now() - make_interval(days => $1)`, [days]);
  }
}

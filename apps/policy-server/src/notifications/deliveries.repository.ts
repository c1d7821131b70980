import { randomUUID } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import type { DeliveriesQuery, Trigger } from '@cgfence/proto';
import { DomainError } from '../common/errors';

/** Rows a list answers when the query names no limit. */
const DEFAULT_LIMIT = 100;

export interface DeliveryRow {
  id: string;
  event_position: string;
  target_id: string;
  trigger: Trigger | 'digest';
  subject: string;
  body: string;
  status: 'pending' | 'delivered' | 'dead' | 'held' | 'digested';
  attempts: number;
  next_attempt_at: Date;
  last_error: string | null;
  created_at: Date;
  delivered_at: Date | null;
  url: string | null;
}

export interface DueDelivery extends DeliveryRow {
  secret: string | null;
}

/** The webhook delivery outbox and the targets' secrets. */
@Injectable()
export class DeliveriesRepository {
  constructor(private readonly db: DataSource) {}

  newId(): string {
    return randomUUID();
  }

  /** In the transaction of the event it reports; the same event and target twice writes nothing. */
  async add(m: EntityManager, d: { id: string; eventPosition: bigint; targetId: string; trigger: Trigger; subject: string; body: string; held?: boolean }): Promise<void> {
    await m.query(
      `insert into webhook_deliveries (id, event_position, target_id, trigger, subject, body, status) values ($1, $2, $3, $4, $5, $6, $7)
       on conflict (event_position, target_id) do nothing`,
      [d.id, d.eventPosition.toString(), d.targetId, d.trigger, d.subject, d.body, d.held ? 'held' : 'pending'],
    );
  }

  /**
   * For each digest target whose oldest held notice is a period old: one
   * digest delivery carrying every notice it holds (rendered by `render`),
   * and those notices marked digested, in one transaction per target.
   * Returns how many digests it made.
   */
  async digest(render: (target: { id: string; format: 'json' | 'slack'; owner_key: string; owner: string; digest: string }, deliveryId: string, held: DeliveryRow[]) => { subject: string; body: string }): Promise<number> {
    const due: { id: string; format: 'json' | 'slack'; owner_key: string; owner: string; digest: string }[] = await this.db.query(
      `select t.id, t.format, t.owner_key, t.owner, t.digest from rm_notification_targets t
        where t.digest is not null and exists (
          select 1 from webhook_deliveries d where d.target_id = t.id and d.status = 'held'
             and d.created_at <= now() - (substring(t.digest from '^[0-9]+') || ' ' || case right(t.digest, 1) when 's' then 'seconds' when 'm' then 'minutes' when 'h' then 'hours' else 'days' end)::interval)
        order by t.id`,
    );
    let made = 0;
    for (const t of due) {
      await this.db.transaction(async (m) => {
        const held: DeliveryRow[] = await m.query(
          `select * from webhook_deliveries where target_id = $1 and status = 'held' order by event_position for update skip locked`,
          [t.id],
        );
        if (held.length === 0) return;
        const id = this.newId();
        const { subject, body } = render(t, id, held);
        const newest = held.reduce((a, d) => (BigInt(d.event_position) > a ? BigInt(d.event_position) : a), 0n);
        await m.query(
          `insert into webhook_deliveries (id, event_position, target_id, trigger, subject, body) values ($1, $2, $3, 'digest', $4, $5)
           on conflict (event_position, target_id) do nothing`,
          [id, (-newest).toString(), t.id, subject, body],
        );
        await m.query(`update webhook_deliveries set status = 'digested' where id = any($1::uuid[])`, [held.map((d) => d.id)]);
        made++;
      });
    }
    return made;
  }

  async setSecret(m: EntityManager, targetId: string, secret: string): Promise<void> {
    await m.query(
      `insert into notification_target_secrets (target_id, secret) values ($1, $2) on conflict (target_id) do update set secret = excluded.secret`,
      [targetId, secret],
    );
  }

  async setSecretNow(targetId: string, secret: string): Promise<void> {
    await this.db.transaction((m) => this.setSecret(m, targetId, secret));
  }

  /**
   * Claims due deliveries (SKIP LOCKED: replicas share them), hands them to
   * `send`, and records each outcome, in one transaction: a crash before the
   * commit leaves them pending, to be sent again.
   */
  async drain(
    limit: number,
    send: (due: DueDelivery[]) => Promise<Map<string, string | null>>,
    backoff: (attempts: number) => number,
    maxAttempts: number,
    counted: (outcome: 'delivered' | 'retry' | 'dead') => void = () => undefined,
  ): Promise<number> {
    return this.db.transaction(async (m) => {
      const due: DueDelivery[] = await m.query(
        `select d.*, t.url, s.secret from webhook_deliveries d
           left join rm_notification_targets t on t.id = d.target_id
           left join notification_target_secrets s on s.target_id = d.target_id
          where d.status = 'pending' and d.next_attempt_at <= now()
          order by d.next_attempt_at, d.id limit $1 for update of d skip locked`,
        [limit],
      );
      if (due.length === 0) return 0;
      const outcome = await send(due);
      for (const d of due) {
        const error = outcome.get(d.id);
        if (error === null) {
          await m.query(`update webhook_deliveries set status = 'delivered', attempts = attempts + 1, delivered_at = now(), last_error = null where id = $1`, [d.id]);
          counted('delivered');
          continue;
        }
        const attempts = d.attempts + 1;
        const dead = attempts >= maxAttempts || d.url === null;
        await m.query(
          `update webhook_deliveries set attempts = $2, last_error = $3, status = $4, next_attempt_at = now() + make_interval(secs => $5) where id = $1`,
          [d.id, attempts, (error ?? 'not attempted').slice(0, 1000), dead ? 'dead' : 'pending', backoff(attempts) / 1000],
        );
        counted(dead ? 'dead' : 'retry');
      }
      return due.length;
    });
  }

  async list(q: DeliveriesQuery): Promise<DeliveryRow[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (q.status) where.push(`d.status = $${params.push(q.status)}`);
    if (q.target) where.push(`d.target_id = $${params.push(q.target)}`);
    params.push(q.limit ?? DEFAULT_LIMIT);
    return this.db.query(
      `select d.*, t.url from webhook_deliveries d left join rm_notification_targets t on t.id = d.target_id
       ${where.length ? `where ${where.join(' and ')}` : ''} order by d.created_at desc, d.id limit $${params.length}`,
      params,
    );
  }

  async get(id: string): Promise<DeliveryRow | undefined> {
    if (!/^[0-9a-f-]{36}$/i.test(id)) return undefined;
    const rows: DeliveryRow[] = await this.db.query(
      `select d.*, t.url from webhook_deliveries d left join rm_notification_targets t on t.id = d.target_id where d.id = $1`,
      [id],
    );
    return rows[0];
  }

  /** A dead delivery goes back in the queue with a fresh count; anything else is left as it is. */
  async retry(id: string): Promise<DeliveryRow> {
    const d = await this.get(id);
    if (!d) throw new DomainError('delivery.not_found', `no delivery ${id}`);
    await this.db.query(`update webhook_deliveries set status = 'pending', attempts = 0, next_attempt_at = now() where id = $1 and status = 'dead'`, [id]);
    return (await this.get(id))!;
  }
}

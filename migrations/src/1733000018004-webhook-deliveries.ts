import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Webhook notifications: each target's signing secret (kept out of the
 * event log, which every auditor reads), and the delivery outbox. A
 * delivery row is written in the transaction of the event it reports (one
 * per event and target: the unique key makes a replay write nothing), and
 * the dispatcher posts it, retrying with backoff until it is delivered or
 * dead (the dead-letter list an operator can retry). A target with a
 * digest period holds its finding notifications ('held') until one digest
 * delivery carries them all ('digested'); a digest's event_position is the
 * negated newest position it carries (unique per target, as the sets are
 * disjoint).
 */
export class WebhookDeliveries1733000018004 implements MigrationInterface {
  name = 'WebhookDeliveries1733000018004';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      create table notification_target_secrets (
        target_id  text        primary key,
        secret     text        not null,
        created_at timestamptz not null default now()
      )`);
    await q.query(`
      create table webhook_deliveries (
        id              uuid        primary key,
        event_position  bigint      not null,
        target_id       text        not null,
        trigger         text        not null,
        subject         text        not null,
        body            text        not null,
        status          text        not null default 'pending' check (status in ('pending', 'delivered', 'dead', 'held', 'digested')),
        attempts        integer     not null default 0,
        next_attempt_at timestamptz not null default now(),
        last_error      text,
        created_at      timestamptz not null default now(),
        delivered_at    timestamptz,
        constraint webhook_deliveries_once unique (event_position, target_id)
      )`);
    await q.query(`create index webhook_deliveries_due on webhook_deliveries (next_attempt_at) where status = 'pending'`);
    await q.query(`create index webhook_deliveries_status on webhook_deliveries (status, created_at desc)`);
    await q.query(`create index webhook_deliveries_held on webhook_deliveries (target_id, created_at) where status = 'held'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`drop table webhook_deliveries`);
    await q.query(`drop table notification_target_secrets`);
  }
}

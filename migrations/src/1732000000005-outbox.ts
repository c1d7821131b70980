import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The transactional outbox: messages that must reach NATS, written in the
 * same transaction as the events they follow from. A relay publishes them
 * with their message id (JetStream drops duplicates) and marks them done;
 * replicas claim rows with SKIP LOCKED so none is published twice at once.
 * An insert wakes the relays through NOTIFY cgf_outbox.
 */
export class Outbox1732000000005 implements MigrationInterface {
  name = 'Outbox1732000000005';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      create table outbox (
        id           bigserial   primary key,
        subject      text        not null,
        msg_id       text        not null unique,
        payload      bytea       not null,
        created_at   timestamptz not null default now(),
        published_at timestamptz,
        attempts     integer     not null default 0,
        last_error   text
      )`);
    await q.query(`create index outbox_pending on outbox (id) where published_at is null`);
    await q.query(`
      create function outbox_notify() returns trigger language plpgsql as $$
      begin
        perform pg_notify('cgf_outbox', new.id::text);
        return new;
      end $$`);
    await q.query(`create trigger outbox_notify after insert on outbox for each row execute function outbox_notify()`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`drop table outbox`);
    await q.query(`drop function outbox_notify()`);
  }
}

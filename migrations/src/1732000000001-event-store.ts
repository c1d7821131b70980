import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The append-only event store. One row per event; (stream_id, stream_version)
 * is unique, which is what makes optimistic concurrency hold even when two
 * writers race past the version check.
 */
export class EventStore1732000000001 implements MigrationInterface {
  name = 'EventStore1732000000001';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      create table events (
        global_position bigserial primary key,
        stream_id       text        not null,
        stream_version  integer     not null check (stream_version > 0),
        event_type      text        not null,
        data            jsonb       not null,
        metadata        jsonb       not null,
        recorded_at     timestamptz not null default now(),
        constraint events_stream_version_unique unique (stream_id, stream_version)
      )`);
    await q.query(`create index events_recorded_at_idx on events (recorded_at)`);
    await q.query(`create index events_actor_idx on events ((metadata->>'actor'), global_position)`);
    // Appending is the only write: forbid UPDATE and DELETE at the database.
    await q.query(`
      create function events_append_only() returns trigger language plpgsql as $$
      begin
        raise exception 'events is append-only (% refused)', tg_op;
      end $$`);
    await q.query(`
      create trigger events_no_update_delete before update or delete on events
      for each row execute function events_append_only()`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`drop trigger events_no_update_delete on events`);
    await q.query(`drop function events_append_only()`);
    await q.query(`drop table events`);
  }
}

import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The history of block events sent by the agents (issue 6), and the runs
 * they belong to.
 *
 * - `block_events` is partitioned by RANGE (time), one partition per day
 *   (`block_events_pYYYYMMDD`, created ahead and dropped after the retention
 *   by the server's partition maintainer), plus a default partition that
 *   catches whatever falls outside the daily ones so an odd timestamp never
 *   fails a batch. The key is (time, id): the id is the agent's UUIDv7 and
 *   the time is part of the event, so a redelivered event hits the same key.
 * - `qname_rev` holds the query name with its labels reversed
 *   (`a.github.com` → `com.github.a`) so "every name under github.com" is a
 *   prefix range on a text_pattern_ops btree.
 * - `block_event_counts` is an hourly rollup written in the ingesting
 *   transaction from the rows that were really inserted (duplicates excluded),
 *   for counts over long ranges.
 * - `runs` and `run_domains` come from the run summaries.
 */
export class BlockEvents1732000000008 implements MigrationInterface {
  name = 'BlockEvents1732000000008';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      create table block_events (
        time           timestamptz not null,
        id             uuid        not null,
        host           text        not null,
        cohort         text,
        run_id         text,
        labels         jsonb       not null default '{}',
        pid            integer,
        comm           text,
        cmdline        text,
        uid            bigint,
        cgroup_id      text,
        qname          text,
        qname_rev      text,
        qtype          text,
        entry          text,
        action         text        not null,
        method         text        not null,
        policy_version text,
        blocklist      text,
        version        integer,
        policy_hash    text,
        destination    text,
        message        text,
        received_at    timestamptz not null default now(),
        primary key (time, id)
      ) partition by range (time)`);
    await q.query(`create table block_events_default partition of block_events default`);
    await q.query(`create index block_events_host_time on block_events (host, time)`);
    await q.query(`create index block_events_qname_rev on block_events (qname_rev text_pattern_ops, time)`);
    await q.query(`create index block_events_run on block_events (run_id, time) where run_id is not null`);
    await q.query(`create index block_events_cohort_time on block_events (cohort, time)`);
    await q.query(`
      create table block_event_counts (
        hour      timestamptz not null,
        host      text        not null,
        cohort    text        not null,
        action    text        not null,
        method    text        not null,
        blocklist text        not null,
        version   integer     not null,
        n         bigint      not null,
        primary key (hour, host, cohort, action, method, blocklist, version)
      )`);
    await q.query(`
      create table runs (
        run_id         text        primary key,
        host           text        not null,
        cohort         text,
        labels         jsonb       not null default '{}',
        command        text,
        started_at     timestamptz not null,
        ended_at       timestamptz,
        exit_code      integer,
        signal         text,
        overflow       integer     not null default 0,
        policy_version text,
        received_at    timestamptz not null default now()
      )`);
    await q.query(`create index runs_host_started on runs (host, started_at)`);
    await q.query(`create index runs_started on runs (started_at)`);
    await q.query(`
      create table run_domains (
        run_id     text        not null references runs (run_id) on delete cascade,
        name       text        not null,
        queries    integer     not null,
        blocked    integer     not null,
        first_seen timestamptz not null,
        last_seen  timestamptz not null,
        primary key (run_id, name)
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`drop table run_domains`);
    await q.query(`drop table runs`);
    await q.query(`drop table block_event_counts`);
    // Dropping the parent drops every partition with it.
    await q.query(`drop table block_events`);
  }
}

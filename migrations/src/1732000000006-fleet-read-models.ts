import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Read models of the fleet: the fleet's desired state (one row: baseline,
 * audit switches, revision) and the hosts. Host columns from events
 * (registration, labels, applied and rejected versions) are rebuilt from the
 * log; the heartbeat columns (last_seen, mode, health, drift) are refreshed
 * by the agents' reports and start empty after a rebuild.
 */
export class FleetReadModels1732000000006 implements MigrationInterface {
  name = 'FleetReadModels1732000000006';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      create table rm_fleet (
        id                 smallint    primary key default 1 check (id = 1),
        revision           integer     not null,
        baseline_blocklist text,
        baseline_version   integer,
        baseline_hash      text,
        audit_fleet        boolean     not null default false,
        audit_cohorts      text[]      not null default '{}',
        rollback           jsonb,
        updated_at         timestamptz not null,
        updated_by         text        not null
      )`);
    await q.query(`
      create table rm_hosts (
        host_id        text        primary key,
        hostname       text        not null,
        labels         jsonb       not null,
        cohort         text,
        kernel         text        not null,
        agent_version  text        not null,
        capabilities   jsonb       not null,
        registered_at  timestamptz not null,
        updated_at     timestamptz not null,
        applied        jsonb,
        last_error     jsonb,
        seen_revision  integer,
        last_seen      timestamptz,
        mode           text,
        fail_mode      text,
        health         jsonb,
        drift          jsonb
      )`);
    await q.query(`create index rm_hosts_cohort on rm_hosts (cohort)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`drop table rm_hosts`);
    await q.query(`drop table rm_fleet`);
  }
}

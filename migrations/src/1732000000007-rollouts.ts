import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Staged rollouts: the progress read model (rebuilt from the rollout streams;
 * at most one active rollout per blocklist, enforced by a partial unique
 * index), and block-count samples from the agents' reports, which the
 * block-rate gate compares before and during a stage's soak.
 */
export class Rollouts1732000000007 implements MigrationInterface {
  name = 'Rollouts1732000000007';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      create table rm_rollouts (
        id              text        primary key,
        blocklist       text        not null,
        version         integer     not null,
        content_hash    text        not null,
        previous        jsonb       not null,
        plan            jsonb       not null,
        status          text        not null,
        stage           integer     not null,
        phase           text        not null,
        phase_since     timestamptz not null,
        stage_started   jsonb       not null default '{}',
        converged_at    jsonb       not null default '{}',
        gate_failures   jsonb       not null default '[]',
        reason          text,
        started_at      timestamptz not null,
        started_by      text        not null,
        updated_at      timestamptz not null
      )`);
    await q.query(`create unique index rm_rollouts_one_active on rm_rollouts (blocklist) where status in ('running', 'paused')`);
    await q.query(`
      create table host_block_samples (
        host_id     text        not null,
        at          timestamptz not null,
        total       bigint      not null,
        primary key (host_id, at)
      )`);
    await q.query(`create index host_block_samples_at on host_block_samples (at)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`drop table host_block_samples`);
    await q.query(`drop table rm_rollouts`);
  }
}

import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Indexes for the dashboard's filters (issue 16).
 *
 * - `block_events (action, time)`: the History page's action filter (audited,
 *   alert: a small share of the events) walks the newest rows of one action
 *   in time order instead of filtering the whole range.
 * - `block_events using gin (labels jsonb_path_ops)`: a run label
 *   (`job=deploy-api-1234`) matches a few rows among millions; without it a
 *   label filter reads the range until it has a page. The planner keeps the
 *   time-ordered scan for labels most rows carry (it has their frequencies).
 * - `rm_hosts using gin (labels jsonb_path_ops)`: GET /hosts?label=k=v.
 *
 * On an existing history the two block_events indexes are built on every
 * partition at start (about 75 s for 10 million events on the shared benchmark
 * machine; docs/operations.md).
 */
export class HistoryFilterIndexes1734000016007 implements MigrationInterface {
  name = 'HistoryFilterIndexes1734000016007';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`create index if not exists block_events_action_time on block_events (action, time)`);
    await q.query(`create index if not exists block_events_labels on block_events using gin (labels jsonb_path_ops)`);
    await q.query(`create index if not exists rm_hosts_labels on rm_hosts using gin (labels jsonb_path_ops)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`drop index if exists rm_hosts_labels`);
    await q.query(`drop index if exists block_events_labels`);
    await q.query(`drop index if exists block_events_action_time`);
  }
}

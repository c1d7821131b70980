import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { PostgresServer } from '@cgfence/devservices';
import { migrations } from '@cgfence/migrations';
import { dataSourceOptions } from '../app.module';
import { loadConfig } from '../config/config';

describe('migrations', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cgfence-migrations-'));
  let pg: PostgresServer;
  let sut: DataSource;

  before(async () => {
    pg = await PostgresServer.start({ dir: join(dir, 'pg'), fast: true });
    const url = await pg.createDatabase('migrations');
    sut = await new DataSource(dataSourceOptions(loadConfig({ CGFENCE_DATABASE_URL: url }))).initialize();
  });
  after(async () => {
    await sut?.destroy();
    await pg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const tables = async (): Promise<string[]> =>
    ((await sut.query(`select tablename from pg_tables where schemaname = 'public' and tablename <> 'schema_migrations' order by 1`)) as { tablename: string }[]).map(
      (r) => r.tablename,
    );

  it('applies every migration, undoes each one with its down(), and applies them again', async () => {
    const applied = await sut.runMigrations();
    assert.equal(applied.length, migrations.length);
    assert.deepEqual(await tables(), [
      'block_event_counts', 'block_events', 'block_events_default', 'blocklist_contents', 'events', 'finding_occurrences', 'host_block_samples',
      'notification_target_secrets', 'outbox', 'rm_api_tokens', 'rm_blocklist_versions', 'rm_blocklists', 'rm_enroll_tokens', 'rm_findings', 'rm_fleet', 'rm_hosts',
      'rm_notification_targets', 'rm_owners', 'rm_rollouts', 'run_domains', 'runs', 'webhook_deliveries',
    ]);
    for (let i = 0; i < migrations.length; i++) await sut.undoLastMigration();
    assert.deepEqual(await tables(), []);
    assert.equal(((await sut.query(`select count(*)::int as n from pg_proc where proname = 'events_append_only'`)) as { n: number }[])[0]?.n, 0);
    assert.equal((await sut.runMigrations()).length, migrations.length);
    assert.equal(await sut.showMigrations(), false);
  });
});

// The benchmarks' block-event history: `total` events generated in PostgreSQL
// (generate_series, one connection per day) over `days` days ending at `now`,
// 500 hosts, 10 cohorts, 50,000 names under 1,000 domains (*.domN.example),
// runs of 200 events, label repo=r0…r19, versions 1-3 of blocklist core, one
// event in ten audited. The hourly rollup is built the way ingestion builds it.
// Times rise through each day in insertion order, with jitter, as ingestion
// stores them (an earlier version drew one random time per day, evaluated
// once: every event of a day had the same timestamp).
import { Client } from 'pg';
import { timeMs } from '@cgfence/devservices';
import { dayOf, dayStart, partitionName } from '../events/partitions';

/** Fills an empty, migrated database; returns how long generation and the rollup took. */
export async function fillBlockEvents(url: string, total: number, days: number, now: number): Promise<{ gen: { ms: number }; rollup: { ms: number } }> {
  const today = dayOf(now);
  const dayList = Array.from({ length: days + 1 }, (_, i) => today - days + i);
  const admin = new Client({ connectionString: url });
  await admin.connect();
  try {
    for (const d of dayList) await admin.query(`create table if not exists ${partitionName(d)} partition of block_events for values from ('${dayStart(d)}') to ('${dayStart(d + 1)}')`);
    const perDay = Math.ceil(total / days);
    const gen = await timeMs(() =>
      Promise.all(
        dayList.slice(0, days).map(async (d, k) => {
          const c = new Client({ connectionString: url });
          await c.connect();
          // The last generated day ends now, the others are whole days.
          const start = Math.max(now - (days - k) * 86_400_000, d * 86_400_000);
          await c.query(
            `insert into block_events (time, id, host, cohort, run_id, labels, pid, comm, cmdline, uid, cgroup_id, qname, qname_rev, qtype, entry, action, method, policy_version, blocklist, version)
             select to_timestamp(($2::float8 + (i - 1 + random()) / $1::float8 * ($3::float8 - $2::float8)) / 1000), gen_random_uuid(), 'host-' || (i % 500), 'cohort-' || (i % 10), 'run-' || (i / 200), jsonb_build_object('repo', 'r' || (i % 20)),
                    1000 + i % 300, 'curl', 'curl -s https://s' || (i % 50) || '.dom' || ((i / 7) % 1000) || '.example/x', 1000, '42',
                    's' || (i % 50) || '.dom' || ((i / 7) % 1000) || '.example', 'example.dom' || ((i / 7) % 1000) || '.s' || (i % 50),
                    'A', '*.dom' || ((i / 7) % 1000) || '.example', case when i % 10 = 0 then 'audited' else 'blocked' end, 'dns', 'core v' || (1 + i % 3), 'core', 1 + i % 3
               from generate_series(1, $1::int) as i`,
            [perDay, Math.max(start, d * 86_400_000), Math.min(now, (d + 1) * 86_400_000 - 1)],
          );
          await c.end();
        }),
      ),
    );
    const rollup = await timeMs(() =>
      admin.query(`insert into block_event_counts select date_trunc('hour', time, 'UTC'), host, coalesce(cohort, ''), action, method, coalesce(blocklist, ''), coalesce(version, 0), count(*)
                     from block_events group by 1, 2, 3, 4, 5, 6, 7`),
    );
    await admin.query('vacuum analyze block_events');
    await admin.query('analyze block_event_counts');
    return { gen, rollup };
  } finally {
    await admin.end();
  }
}

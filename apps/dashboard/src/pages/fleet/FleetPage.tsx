import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useMemo, useState } from 'react';
import { Link } from 'react-router';
import { api, ok } from '../../api/client';
import { useMe } from '../../auth';
import { Async, Badge, ConfirmButton, Empty, ErrorView, Time } from '../../components/ui';
import { TimeChart } from '../../components/TimeChart';
import { seriesOf } from '../history/buckets';
import { HOST_STATES, hostState, STATE_PARAM, STATE_TONE } from './hostState';

export function FleetPage() {
  const { can } = useMe();
  const qc = useQueryClient();
  const fleet = useQuery({ queryKey: ['fleet'], queryFn: () => ok(api.GET('/fleet')) });
  const hosts = useQuery({ queryKey: ['hosts'], queryFn: () => ok(api.GET('/hosts', { params: { query: {} } })) });
  const rate = useQuery({
    queryKey: ['aggregate', 'fleet-rate'],
    queryFn: () => ok(api.GET('/events/aggregate', { params: { query: { by: 'action', bucket: 'hour', from: '24h' } } })),
  });
  const [cohort, setCohort] = useState('');
  const audit = useMutation({
    mutationFn: (body: { on: boolean; cohort?: string }) => ok(api.POST('/fleet/audit-mode', { body })),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['fleet'] }),
  });
  const counts = useMemo(() => {
    const c = Object.fromEntries(HOST_STATES.map((s) => [s, 0])) as Record<(typeof HOST_STATES)[number], number>;
    for (const h of hosts.data ?? []) c[hostState(h)]++;
    return c;
  }, [hosts.data]);
  const chart = useMemo(() => {
    const rows = rate.data?.rows ?? [];
    const now = Date.now();
    const { x, values } = seriesOf(rows, ['blocked'], now - 86_400_000, now, 'hour');
    return { x, empty: rows.length === 0, series: [{ name: 'blocked per hour', values: values[0]!, color: '#c0392b' }] };
  }, [rate.data]);
  const cohorts = useMemo(() => [...new Set((hosts.data ?? []).map((h) => h.cohort).filter((c): c is string => !!c))].sort(), [hosts.data]);

  return (
    <>
      <h1>Fleet</h1>
      <Async q={fleet} what="the fleet">
        {(f) => (
          <>
            <section className="cards" aria-label="Hosts by state">
              {HOST_STATES.map((s) => (
                <Link key={s} className="card" to={`/hosts?state=${STATE_PARAM[s]}`}>
                  <span className="big">{counts[s]}</span>
                  <Badge tone={STATE_TONE[s]}>{s}</Badge>
                </Link>
              ))}
            </section>
            {hosts.data?.length === 0 && (
              <Empty title="No hosts yet">
                <p>On each host, as root, give it credentials and start the agent:</p>
                <pre>{`cgfence nats add-host HOST-ID            # on the server: prints the host's seed\ncgfence agent --server nats://SERVER:4222 --nats-seed host.nk --server-key server-key.pem --label cohort=canary`}</pre>
              </Empty>
            )}
            <section>
              <h2>Baseline</h2>
              {f.baseline ? (
                <p>
                  <Link to={`/blocklists/${encodeURIComponent(f.baseline.blocklist)}`}>{f.baseline.blocklist}</Link> version {f.baseline.version}{' '}
                  <code title="content hash">{f.baseline.hash.slice(0, 12)}</code> · revision {f.revision} · set <Time at={f.updatedAt} /> by {f.updatedBy ?? '—'}
                </p>
              ) : (
                <Empty title="No baseline yet">
                  <p>
                    Create a blocklist and commit a version on the <Link to="/blocklists">Blocklists</Link> page, then assign it as the baseline or{' '}
                    <Link to="/rollouts/new">roll it out</Link> stage by stage.
                  </p>
                </Empty>
              )}
            </section>
            <section>
              <h2>Audit switches</h2>
              <p>
                Fleet: {f.audit.fleet ? <Badge tone="bad">auditing (nothing is blocked)</Badge> : <Badge tone="ok">enforcing</Badge>}
                {f.audit.cohorts.length > 0 && <> · cohorts auditing: {f.audit.cohorts.map((c) => <Badge key={c} tone="warn">{c}</Badge>)}</>}
              </p>
              {audit.error && <ErrorView error={audit.error} />}
              {can('operator') && (
                <div className="row">
                  <ConfirmButton
                    label={f.audit.fleet ? 'Resume enforcing (fleet)' : 'Kill switch: audit the whole fleet'}
                    title={f.audit.fleet ? 'Resume enforcing on every host?' : 'Turn on the kill switch?'}
                    danger={!f.audit.fleet}
                    consequence={
                      f.audit.fleet ? (
                        <p>Every one of the {f.hosts.total} hosts goes back to blocking what its blocklist lists.</p>
                      ) : (
                        <p>
                          Every one of the {f.hosts.total} hosts stops blocking and only records what it would have blocked (audit mode), until someone
                          resumes enforcing. Deploy scripts will be able to reach every listed service.
                        </p>
                      )
                    }
                    confirmLabel={f.audit.fleet ? 'Resume enforcing' : 'Audit the whole fleet'}
                    onConfirm={() => audit.mutateAsync({ on: !f.audit.fleet })}
                  />
                  <label>
                    Cohort
                    <select value={cohort} onChange={(e) => setCohort(e.target.value)}>
                      <option value="">choose…</option>
                      {cohorts.map((c) => (
                        <option key={c}>{c}</option>
                      ))}
                    </select>
                  </label>
                  {cohort && (
                    <ConfirmButton
                      label={f.audit.cohorts.includes(cohort) ? `Resume enforcing in ${cohort}` : `Audit cohort ${cohort}`}
                      title={`Change cohort ${cohort}?`}
                      danger={!f.audit.cohorts.includes(cohort)}
                      consequence={
                        <p>
                          The {(hosts.data ?? []).filter((h) => h.cohort === cohort).length} hosts of cohort <b>{cohort}</b>{' '}
                          {f.audit.cohorts.includes(cohort) ? 'go back to blocking.' : 'stop blocking and only record what they would have blocked.'}
                        </p>
                      }
                      confirmLabel="Confirm"
                      onConfirm={() => audit.mutateAsync({ on: !f.audit.cohorts.includes(cohort), cohort })}
                    />
                  )}
                </div>
              )}
            </section>
            <section>
              <h2>Blocks per hour, last 24 hours</h2>
              {rate.error ? <ErrorView error={rate.error} /> : chart.empty ? <p className="muted">No blocks in the last 24 hours.</p> : <TimeChart label="Blocks per hour over the last 24 hours" x={chart.x} series={chart.series} />}
              <p><Link to="/history?from=24h">Open the history</Link></p>
            </section>
          </>
        )}
      </Async>
    </>
  );
}

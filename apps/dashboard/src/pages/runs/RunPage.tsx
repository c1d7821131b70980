import { useQuery } from '@tanstack/react-query';
import { Link, useParams } from 'react-router';
import { api, ok } from '../../api/client';
import { Async, Badge, Time } from '../../components/ui';
import { EventsTable } from '../history/EventsTable';

/** One `cgfence run`: where, who, how it ended, its blocks and the domains it contacted. */
export function RunPage() {
  const id = useParams().id!;
  const run = useQuery({ queryKey: ['run', id], queryFn: () => ok(api.GET('/runs/{id}', { params: { path: { id } } })) });
  return (
    <Async q={run} what="the run">
      {(r) => (
        <>
          <h1>Run <code>{r.runId}</code></h1>
          <dl className="facts">
            <dt>Host</dt><dd><Link to={`/hosts/${encodeURIComponent(r.host)}`}>{r.host}</Link>{r.cohort ? ` (cohort ${r.cohort})` : ''}</dd>
            <dt>Command</dt><dd><code>{r.command ?? '—'}</code></dd>
            <dt>Labels</dt><dd>{Object.entries(r.labels).map(([k, v]) => <code key={k} className="chip">{k}={v}</code>)}</dd>
            <dt>User</dt><dd>{String(r.latest[0]?.uid ?? '—')}</dd>
            <dt>Started</dt><dd><Time at={r.startedAt} /></dd>
            <dt>Ended</dt><dd><Time at={r.endedAt} /></dd>
            <dt>Exit</dt><dd>{r.exitCode === null ? (r.signal ? `signal ${r.signal}` : 'still running') : <Badge tone={r.exitCode === 0 ? 'ok' : 'bad'}>exit {r.exitCode}</Badge>}</dd>
            <dt>Policy</dt><dd>{r.policyVersion ?? '—'}</dd>
            <dt>Events</dt><dd>{r.events.total} ({r.events.blocked} blocked, {r.events.audited} audited, {r.events.alert} alerts)</dd>
          </dl>
          <h2>Domains it contacted</h2>
          {r.domains.length === 0 ? (
            <p className="muted">None recorded.</p>
          ) : (
            <table>
              <caption className="sr-only">Domains the run contacted</caption>
              <thead><tr><th scope="col">Name</th><th scope="col">Queries</th><th scope="col">Blocked</th><th scope="col">First</th><th scope="col">Last</th></tr></thead>
              <tbody>
                {r.domains.map((d) => (
                  <tr key={d.name}><td><code>{d.name}</code></td><td>{d.queries}</td><td>{d.blocked ? <Badge tone="bad">{d.blocked}</Badge> : 0}</td><td><Time at={d.firstSeen} /></td><td><Time at={d.lastSeen} /></td></tr>
                ))}
              </tbody>
            </table>
          )}
          {r.overflow > 0 && <p className="muted">{r.overflow} more names past the agent's per-run limit (counted, not listed).</p>}
          <h2>Its blocks</h2>
          {r.latest.length === 0 ? <p className="muted">No blocks.</p> : <EventsTable events={r.latest} />}
          <p><Link to={`/history?run=${encodeURIComponent(r.runId)}&from=30d`}>All of this run's events in History</Link></p>
        </>
      )}
    </Async>
  );
}

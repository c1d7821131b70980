import { useQuery } from '@tanstack/react-query';
import { Link, useParams } from 'react-router';
import { api, ok } from '../../api/client';
import { Async, Badge, Time } from '../../components/ui';
import { hostState, STATE_TONE } from '../fleet/hostState';
import { EventsTable } from '../history/EventsTable';

export function HostPage() {
  const id = useParams().id!;
  const host = useQuery({ queryKey: ['host', id], queryFn: () => ok(api.GET('/hosts/{id}', { params: { path: { id } } })) });
  const blocks = useQuery({ queryKey: ['events', 'host', id], queryFn: () => ok(api.GET('/events', { params: { query: { host: id, limit: 20 } } })) });
  return (
    <>
      <p><Link to="/hosts">← Hosts</Link></p>
      <Async q={host} what="the host">
        {(h) => (
          <>
            <h1>{h.hostId} <Badge tone={STATE_TONE[hostState(h)]}>{hostState(h)}</Badge></h1>
            <dl className="facts">
              <dt>Hostname</dt><dd>{h.hostname}</dd>
              <dt>Cohort</dt><dd>{h.cohort ?? '—'}</dd>
              <dt>Labels</dt><dd>{Object.entries(h.labels).map(([k, v]) => <code key={k} className="chip">{k}={v}</code>)}</dd>
              <dt>Agent</dt><dd>{h.agentVersion} · kernel {h.kernel}</dd>
              <dt>Desired</dt><dd>{h.desired ? `${h.desired.blocklist} v${h.desired.version} (${h.desired.mode}, revision ${h.desired.revision})` : '—'}</dd>
              <dt>Applied</dt><dd>{h.applied ? <>{h.applied.blocklist} v{h.applied.version} (revision {h.applied.revision}) at <Time at={h.applied.appliedAt} /></> : '—'}</dd>
              <dt>Mode</dt><dd>{h.mode ?? '—'} · fail mode {h.failMode ?? '—'}</dd>
              <dt>Health</dt><dd>{h.health ? `proxy ${h.health.proxy ? 'ok' : 'DOWN'}, kernel ${h.health.kernel ? 'ok' : 'DOWN'}${h.health.detail ? ` (${h.health.detail})` : ''}` : '—'}</dd>
              <dt>Drift</dt><dd>{h.drift ? (h.drift.drifted ? <Badge tone="bad">drifted: {h.drift.detail ?? ''}</Badge> : 'none') : '—'}</dd>
              <dt>Last error</dt><dd>{h.lastError ? <span className="bad">{h.lastError.reason}: {h.lastError.message} (<Time at={h.lastError.at} />)</span> : 'none'}</dd>
              <dt>Last seen</dt><dd><Time at={h.lastSeen} /></dd>
            </dl>
            <h2>Recent blocks</h2>
            <Async q={blocks} what="blocks">
              {(p) => (p.events.length === 0 ? <p className="muted">No blocks recorded on this host.</p> : <EventsTable events={p.events} />)}
            </Async>
            <p><Link to={`/history?host=${encodeURIComponent(h.hostId)}`}>All of this host's history</Link></p>
          </>
        )}
      </Async>
    </>
  );
}

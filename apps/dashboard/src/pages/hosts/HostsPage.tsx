import { useQuery } from '@tanstack/react-query';
import type { ColumnDef } from '@tanstack/react-table';
import { useMemo } from 'react';
import { Link, useSearchParams } from 'react-router';
import { api, ok } from '../../api/client';
import type { Host } from '../../api/types';
import { DataTable } from '../../components/DataTable';
import { Async, Badge, Empty, Time } from '../../components/ui';
import { HOST_STATES, hostState, STATE_TONE } from '../fleet/hostState';

const ref = (r: { blocklist: string; version: number } | null) => (r ? `${r.blocklist} v${r.version}` : '—');

const columns: ColumnDef<Host, unknown>[] = [
  { header: 'Host', accessorKey: 'hostId', cell: (c) => <Link to={`/hosts/${encodeURIComponent(c.row.original.hostId)}`}>{c.row.original.hostId}</Link> },
  { header: 'Cohort', accessorFn: (h) => h.cohort ?? '' },
  { header: 'State', accessorFn: hostState, cell: (c) => <Badge tone={STATE_TONE[hostState(c.row.original)]}>{hostState(c.row.original)}</Badge> },
  { header: 'Desired', accessorFn: (h) => ref(h.desired) },
  { header: 'Applied', accessorFn: (h) => ref(h.applied) },
  { header: 'Mode', accessorFn: (h) => h.mode ?? '' },
  { header: 'Agent', accessorKey: 'agentVersion' },
  { header: 'Labels', accessorFn: (h) => Object.entries(h.labels).map(([k, v]) => `${k}=${v}`).join(' '), enableSorting: false },
  { header: 'Last seen', accessorFn: (h) => h.lastSeen ?? '', cell: (c) => <Time at={c.row.original.lastSeen} /> },
];

/** Hosts, filtered by cohort, label, state and agent version; every filter is in the URL. */
export function HostsPage() {
  const [params, setParams] = useSearchParams();
  const cohort = params.get('cohort') ?? '';
  const label = params.get('label') ?? '';
  const state = params.get('state') ?? '';
  const version = params.get('version') ?? '';
  const hosts = useQuery({ queryKey: ['hosts', cohort], queryFn: () => ok(api.GET('/hosts', { params: { query: cohort ? { cohort } : {} } })) });
  const set = (k: string, v: string) => {
    const next = new URLSearchParams(params);
    if (v) next.set(k, v);
    else next.delete(k);
    setParams(next, { replace: true });
  };
  const rows = useMemo(() => {
    const [lk, lv] = label.includes('=') ? label.split('=', 2) : [label, undefined];
    return (hosts.data ?? []).filter(
      (h) =>
        (!state || hostState(h) === state) &&
        (!version || h.agentVersion === version) &&
        (!lk || (lv === undefined ? lk in h.labels : h.labels[lk!] === lv)),
    );
  }, [hosts.data, label, state, version]);
  return (
    <>
      <h1>Hosts</h1>
      <form className="filters" onSubmit={(e) => e.preventDefault()} aria-label="Filter hosts">
        <label>Cohort<input value={cohort} onChange={(e) => set('cohort', e.target.value)} placeholder="canary" /></label>
        <label>Label<input value={label} onChange={(e) => set('label', e.target.value)} placeholder="team=payments" /></label>
        <label>
          State
          <select value={state} onChange={(e) => set('state', e.target.value)}>
            <option value="">any</option>
            {HOST_STATES.map((s) => <option key={s}>{s}</option>)}
          </select>
        </label>
        <label>Agent version<input value={version} onChange={(e) => set('version', e.target.value)} /></label>
      </form>
      <Async q={hosts} what="hosts">
        {(all) =>
          all.length === 0 ? (
            <Empty title="No hosts yet">
              <p>Give a host credentials on the server, then start its agent as root:</p>
              <pre>{`cgfence nats add-host HOST-ID > host.nk\ncgfence agent --server nats://SERVER:4222 --nats-seed host.nk --server-key server-key.pem --label cohort=canary`}</pre>
            </Empty>
          ) : rows.length === 0 ? (
            <p className="muted">No host matches these filters ({all.length} hosts in all).</p>
          ) : (
            <DataTable caption="Hosts" data={rows} columns={columns} rowKey={(h) => h.hostId} />
          )
        }
      </Async>
    </>
  );
}

import { keepPreviousData, useInfiniteQuery } from '@tanstack/react-query';
import type { ColumnDef } from '@tanstack/react-table';
import { useMemo, type FormEvent } from 'react';
import { Link, useSearchParams } from 'react-router';
import type { paths } from '../../api/generated/openapi';
import { api, ok } from '../../api/client';
import type { Host } from '../../api/types';
import { DataTable } from '../../components/DataTable';
import { Async, Badge, Empty, Time } from '../../components/ui';
import { HOST_STATES, hostState, STATE_PARAM, STATE_TONE } from '../fleet/hostState';

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

type HostsQuery = NonNullable<paths['/hosts']['get']['parameters']['query']>;
/** Hosts per page (keyset paging by host id on the server). */
const PAGE = 200;
/** The filters of GET /hosts the page offers, as the URL and the API name them. */
const TEXT_FILTERS = [
  ['cohort', 'Cohort', 'canary'],
  ['agentVersion', 'Agent version', ''],
  ['applied', 'Applied', 'core or core@3'],
  ['desired', 'Desired', 'core or core@3'],
] as const;

/** Hosts filtered on the server by cohort, labels, state, agent and blocklist version; every filter is in the URL; pages of 200. */
export function HostsPage() {
  const [params, setParams] = useSearchParams();
  const labels = params.getAll('label');
  const query = useMemo(() => {
    const q: HostsQuery = {};
    for (const [k] of TEXT_FILTERS) {
      const v = params.get(k);
      if (v) q[k] = v;
    }
    const s = params.get('state');
    if (s) q.state = s as HostsQuery['state'];
    const l = params.getAll('label');
    if (l.length > 0) q.label = l;
    return q;
  }, [params]);
  const filtered = Object.keys(query).length > 0;
  const hosts = useInfiniteQuery({
    queryKey: ['hosts', 'page', query],
    initialPageParam: undefined as string | undefined,
    queryFn: ({ pageParam }) => ok(api.GET('/hosts', { params: { query: { ...query, limit: PAGE, ...(pageParam ? { after: pageParam } : {}) } } })),
    getNextPageParam: (p) => (p.length === PAGE ? p[p.length - 1]!.hostId : undefined),
    placeholderData: keepPreviousData,
  });
  const submit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const fd = new FormData(e.currentTarget);
    const next = new URLSearchParams();
    for (const [k] of TEXT_FILTERS) {
      const v = String(fd.get(k) ?? '').trim();
      if (v) next.set(k, v);
    }
    for (const l of String(fd.get('label') ?? '').split(/[\s,]+/)) if (l) next.append('label', l);
    const s = String(fd.get('state') ?? '');
    if (s) next.set('state', s);
    setParams(next);
  };
  const rows = useMemo(() => hosts.data?.pages.flat() ?? [], [hosts.data]);
  return (
    <>
      <h1>Hosts</h1>
      <form className="filters" onSubmit={submit} aria-label="Filter hosts" key={params.toString()}>
        <label>Cohort<input name="cohort" defaultValue={params.get('cohort') ?? ''} placeholder="canary" /></label>
        <label>Labels<input name="label" defaultValue={labels.join(' ')} placeholder="team=payments env=prod" /></label>
        <label>
          State
          <select name="state" defaultValue={params.get('state') ?? ''}>
            <option value="">any</option>
            {HOST_STATES.map((s) => <option key={s} value={STATE_PARAM[s]}>{s}</option>)}
          </select>
        </label>
        {TEXT_FILTERS.slice(1).map(([k, label, hint]) => (
          <label key={k}>{label}<input name={k} defaultValue={params.get(k) ?? ''} placeholder={hint} /></label>
        ))}
        <div className="row">
          <button type="submit" className="primary">Apply</button>
          <button type="button" onClick={() => setParams(new URLSearchParams())}>Clear</button>
        </div>
      </form>
      <Async q={hosts} what="hosts">
        {() =>
          rows.length === 0 && !filtered ? (
            <Empty title="No hosts yet">
              <p>Give a host credentials on the server, then start its agent as root:</p>
              <pre>{`cgfence nats add-host HOST-ID > host.nk\ncgfence agent --server nats://SERVER:4222 --nats-seed host.nk --server-key server-key.pem --label cohort=canary`}</pre>
            </Empty>
          ) : rows.length === 0 ? (
            <p className="muted">No host matches these filters.</p>
          ) : (
            <>
              <DataTable caption="Hosts" data={rows} columns={columns} rowKey={(h) => h.hostId} />
              <div className="row">
                <span className="muted">{rows.length} shown, by host id{hosts.isPlaceholderData && <span role="status"> (updating…)</span>}</span>
                {hosts.hasNextPage && (
                  <button type="button" onClick={() => void hosts.fetchNextPage()} disabled={hosts.isFetchingNextPage}>
                    {hosts.isFetchingNextPage ? 'Loading…' : 'More hosts'}
                  </button>
                )}
              </div>
            </>
          )
        }
      </Async>
    </>
  );
}

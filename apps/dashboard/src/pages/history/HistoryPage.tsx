import { keepPreviousData, useInfiniteQuery, useQuery } from '@tanstack/react-query';
import { useMemo, useState, type FormEvent, type ReactNode } from 'react';
import { Link, useSearchParams } from 'react-router';
import { api, download, ok } from '../../api/client';
import type { Aggregate, EventFilter, Summary } from '../../api/types';
import { TimeChart } from '../../components/TimeChart';
import { Async, Empty, ErrorView } from '../../components/ui';
import { bucketFor, seriesOf, timeOf } from './buckets';
import { EventsTable } from './EventsTable';

/** Every filter of GET /events, as the URL and the API name it. */
const FILTERS = [
  ['from', 'From', '24h or 2026-01-31T12:00Z'],
  ['to', 'To', 'now'],
  ['host', 'Host', ''],
  ['cohort', 'Cohort', ''],
  ['run', 'Run', ''],
  ['label', 'Label', 'job=deploy-api'],
  ['domain', 'Domain', 'github.com or *.github.com'],
  ['cmd', 'Command', 'curl'],
  ['action', 'Action', ''],
  ['method', 'Method', ''],
  ['blocklist', 'Blocklist', ''],
  ['version', 'Version', ''],
] as const;
type FilterKey = (typeof FILTERS)[number][0];
const PAGE = 100;

/** The URL's filter as GET /events takes it (the server validates: a bad value comes back as a 400 shown above the table). */
function toQuery(f: Partial<Record<FilterKey, string>>): EventFilter {
  const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  const q: EventFilter = {
    from: f.from,
    to: f.to,
    host: f.host,
    cohort: f.cohort,
    run: f.run,
    label: f.label ? [f.label] : undefined,
    domain: f.domain,
    pid: undefined,
    cmd: f.cmd,
    action: f.action as EventFilter['action'],
    method: f.method as EventFilter['method'],
    blocklist: f.blocklist,
    version: num(f.version),
  };
  return Object.fromEntries(Object.entries(q).filter(([, v]) => v !== undefined)) as EventFilter;
}

function withParam(params: URLSearchParams, k: string, v: string): URLSearchParams {
  const n = new URLSearchParams(params);
  n.set(k, v);
  return n;
}
const TOP = [['domain', 'Domains'], ['host', 'Hosts'], ['command', 'Commands']] as const;


/** Block events: filters (all in the URL), a time-bucket chart, top-N panels, the table with keyset paging, exports. */
export function HistoryPage() {
  const [params, setParams] = useSearchParams();
  const filter = useMemo(() => {
    const f: Partial<Record<FilterKey, string>> = {};
    for (const [k] of FILTERS) {
      const v = params.get(k);
      if (v) f[k] = v;
    }
    if (!f.from) f.from = '24h';
    return f;
  }, [params]);
  const labelKey = params.get('topLabel') ?? 'job';
  const query = useMemo(() => toQuery(filter), [filter]);

  const pages = useInfiniteQuery({
    queryKey: ['events', query],
    initialPageParam: undefined as string | undefined,
    queryFn: ({ pageParam }) => ok(api.GET('/events', { params: { query: { ...query, limit: PAGE, ...(pageParam ? { after: pageParam } : {}) } } })),
    getNextPageParam: (p) => p.next ?? undefined,
    // A filter change keeps the last result on screen until the new one is in (no flash of "Loading").
    placeholderData: keepPreviousData,
  });
  // The range as of this filter's first render (a relative "24h" moves on with the live refetches).
  const range = useMemo(() => {
    const now = Date.now();
    const to = timeOf(filter.to, now) ?? now;
    return { from: timeOf(filter.from, now) ?? to - 86_400_000, to };
  }, [filter.from, filter.to]);
  const bucket = bucketFor(range.from, range.to);
  // The chart and the four top-N panels in one request (GET /events/summary):
  // with the live stream holding one of the browser's six connections to the
  // server, six requests per filter change would queue behind each other.
  const summary = useQuery({
    queryKey: ['aggregate', 'summary', query, bucket, labelKey],
    queryFn: () => ok(api.GET('/events/summary', { params: { query: { ...query, bucket, top: 10, labelKey } } })),
    placeholderData: keepPreviousData,
  });
  const series = { ...summary, data: summary.data?.series };
  const chart = useMemo(() => {
    const rows = series.data?.rows ?? [];
    const { x, values } = seriesOf(rows, ['blocked', 'audited'], range.from, Math.max(range.to, Date.now()), bucket);
    return { x, empty: rows.length === 0, series: [{ name: 'blocked', values: values[0]!, color: '#c0392b' }, { name: 'audited', values: values[1]!, color: '#9a6700' }] };
  }, [series.data, range, bucket]);

  const set = (next: Record<string, string>) => setParams(new URLSearchParams(Object.entries(next).filter(([, v]) => v !== '')), { replace: false });
  const submit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const fd = new FormData(e.currentTarget);
    set({ ...Object.fromEntries(FILTERS.map(([k]) => [k, String(fd.get(k) ?? '').trim()])), topLabel: labelKey });
  };
  const exportQs = new URLSearchParams(Object.entries(filter).filter(([k]) => k !== 'label'));
  if (filter.label) exportQs.append('label', filter.label);
  const events = pages.data?.pages.flatMap((p) => p.events) ?? [];

  return (
    <>
      <h1>History</h1>
      <form className="filters" onSubmit={submit} aria-label="Filter block events" key={params.toString()}>
        {FILTERS.map(([k, label, hint]) =>
          k === 'action' || k === 'method' ? (
            <label key={k}>
              {label}
              <select name={k} defaultValue={filter[k] ?? ''}>
                <option value="">any</option>
                {(k === 'action' ? ['blocked', 'audited', 'alert'] : ['dns', 'ip']).map((o) => <option key={o}>{o}</option>)}
              </select>
            </label>
          ) : (
            <label key={k}>
              {label}
              <input name={k} defaultValue={filter[k] ?? ''} placeholder={hint} />
            </label>
          ),
        )}
        <div className="row">
          <button type="submit" className="primary">Apply</button>
          <button type="button" onClick={() => set({})}>Clear</button>
        </div>
      </form>
      <div className="row">
        <span>Export this filter:</span>
        <button type="button" className="link" onClick={() => void download(`/events?${exportQs}&format=csv`, 'cgfence-events.csv')}>CSV</button>
        <button type="button" className="link" onClick={() => void download(`/events?${exportQs}&format=ndjson`, 'cgfence-events.ndjson')}>NDJSON</button>
        <span className="muted">(same as <code>cgfence events --format csv</code>)</span>
      </div>
      <section>
        <h2>Blocks per {bucket}</h2>
        {series.error ? <ErrorView error={series.error} /> : chart.empty ? <p className="muted">Nothing in this range.</p> : <TimeChart label={`Block events per ${bucket}`} x={chart.x} series={chart.series} />}
      </section>
      {series.data?.sampled && <Sampled s={series.data.sampled} />}
      <section className="panels" aria-label="Top values">
        {TOP.map(([by, title]) => <TopPanel key={by} q={summary} pick={(d) => d.top[by]} title={title} field={by === 'command' ? 'cmd' : by} />)}
        <TopPanel q={summary} pick={(d) => d.top.label} title={<>Label <LabelKey value={labelKey} onChange={(v) => set({ ...filter, topLabel: v })} /></>} field="label" labelKey={labelKey} />
      </section>
      <section>
        <h2>Events {pages.isPlaceholderData && <span className="muted" role="status">(updating…)</span>}</h2>
        {pages.error ? (
          <ErrorView error={pages.error} />
        ) : pages.isPending ? (
          <p className="muted" role="status">Loading events…</p>
        ) : events.length === 0 ? (
          <Empty title="No block events match">
            <p>Widen the time range or clear a filter. Blocks appear here when a process in a deploy cgroup (<code>cgfence run -- …</code>) tries a listed name or address.</p>
          </Empty>
        ) : (
          <>
            <EventsTable events={events} />
            <div className="row">
              <span className="muted">{events.length} shown, newest first</span>
              {pages.hasNextPage && (
                <button type="button" onClick={() => void pages.fetchNextPage()} disabled={pages.isFetchingNextPage}>
                  {pages.isFetchingNextPage ? 'Loading…' : 'Older events'}
                </button>
              )}
            </div>
          </>
        )}
      </section>
    </>
  );
}

function LabelKey({ value, onChange }: { value: string; onChange(v: string): void }) {
  const [v, setV] = useState(value);
  return (
    <input aria-label="Label key for the top-N panel" className="inline" value={v} size={8} onChange={(e) => setV(e.target.value)} onBlur={() => v && v !== value && onChange(v)} />
  );
}

/** Counts estimated from a page sample (a filter matching more events than the server counts one by one). */
function Sampled({ s }: { s: { percent: number; rows: number } }) {
  return (
    <p className="muted" role="note">
      ≈ Estimated: this filter matches too many events to count one by one, so the chart and the panels scale up what matched in a {s.percent}% sample of the range ({s.rows.toLocaleString('en-US')} events). The table below is exact.
    </p>
  );
}

function TopPanel({ q, pick, title, field, labelKey }: { q: { data?: Summary; error: unknown; isPending: boolean }; pick: (d: Summary) => Aggregate; title: ReactNode; field: string; labelKey?: string }) {
  const [params] = useSearchParams();
  const top = { ...q, data: q.data ? pick(q.data) : undefined };
  return (
    <div className="panel">
      <h3>{title}</h3>
      <Async q={top} what="top values">
        {(a) =>
          a.rows.length === 0 ? (
            <p className="muted">none</p>
          ) : (
            <ol>
              {a.rows.map((r) => {
                const v = labelKey ? `${labelKey}=${r.key ?? ''}` : r.key ?? '';
                return (
                  <li key={r.key ?? ''}>
                    <Link to={`/history?${withParam(params, field, v)}`}>{r.key ?? '(none)'}</Link> <span className="muted">{a.sampled ? '≈' : ''}{r.count}</span>
                  </li>
                );
              })}
            </ol>
          )
        }
      </Async>
    </div>
  );
}

import { useInfiniteQuery } from '@tanstack/react-query';
import { useSearchParams } from 'react-router';
import { api, ok } from '../../api/client';
import { Empty, ErrorView, Time } from '../../components/ui';

/** Who did what: the event store's log, newest first, filtered by actor and stream (in the URL). */
export function AuditPage() {
  const [params, setParams] = useSearchParams();
  const actor = params.get('actor') ?? '';
  const stream = params.get('stream') ?? '';
  const q = useInfiniteQuery({
    queryKey: ['audit', actor, stream],
    initialPageParam: undefined as string | undefined,
    queryFn: ({ pageParam }) => ok(api.GET('/audit', { params: { query: { ...(actor ? { actor } : {}), ...(stream ? { stream } : {}), limit: 100, ...(pageParam ? { before: pageParam } : {}) } } })),
    getNextPageParam: (page) => page.next ?? undefined,
  });
  const set = (k: string, v: string) => {
    const n = new URLSearchParams(params);
    if (v) n.set(k, v);
    else n.delete(k);
    setParams(n, { replace: true });
  };
  const rows = q.data?.pages.flatMap((p) => p.records) ?? [];
  return (
    <>
      <h1>Audit log</h1>
      <form className="filters" aria-label="Filter the audit log" onSubmit={(e) => e.preventDefault()}>
        <label>Actor<input value={actor} onChange={(e) => set('actor', e.target.value)} /></label>
        <label>Stream<input value={stream} onChange={(e) => set('stream', e.target.value)} placeholder="blocklist-deploy-safety" /></label>
      </form>
      {q.error ? (
        <ErrorView error={q.error} />
      ) : q.isPending ? (
        <p className="muted" role="status">Loading…</p>
      ) : rows.length === 0 ? (
        <Empty title="Nothing recorded yet"><p>Every change (blocklists, baseline, rollouts, tokens) is recorded here with who made it.</p></Empty>
      ) : (
        <div className="table-wrap">
          <table>
            <caption className="sr-only">Audit log, newest first</caption>
            <thead><tr><th scope="col">Time</th><th scope="col">Actor</th><th scope="col">What</th><th scope="col">Stream</th><th scope="col">Details</th></tr></thead>
            <tbody>
              {rows.map((r) => (
                <tr key={r.position}><td><Time at={r.time} /></td><td>{r.actor}</td><td>{r.type}</td><td><code>{r.stream}</code></td><td><code className="cmd">{JSON.stringify(r.summary)}</code></td></tr>
              ))}
            </tbody>
          </table>
          {q.hasNextPage && <button type="button" onClick={() => void q.fetchNextPage()}>Older</button>}
        </div>
      )}
    </>
  );
}

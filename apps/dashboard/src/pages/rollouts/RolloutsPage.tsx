import { useQuery } from '@tanstack/react-query';
import type { ColumnDef } from '@tanstack/react-table';
import { Link, useSearchParams } from 'react-router';
import { api, ok } from '../../api/client';
import type { Rollout } from '../../api/types';
import { useMe } from '../../auth';
import { DataTable } from '../../components/DataTable';
import { Async, Badge, Empty, Time } from '../../components/ui';
import { needsAttention } from './attention';

export const STATUS_TONE = { running: 'info', paused: 'warn', completed: 'ok', aborted: 'idle', 'rolled-back': 'bad' } as const;

const columns: ColumnDef<Rollout, unknown>[] = [
  { header: 'Rollout', accessorKey: 'id', cell: (c) => <Link to={`/rollouts/${encodeURIComponent(c.row.original.id)}`}>{c.row.original.id}</Link> },
  { header: 'Blocklist', accessorFn: (r) => `${r.blocklist} v${r.previousVersion ?? '?'} → v${r.version}` },
  { header: 'Status', accessorKey: 'status', cell: (c) => <Badge tone={STATUS_TONE[c.row.original.status]}>{c.row.original.status}</Badge> },
  { header: 'Needs attention', accessorFn: (r) => needsAttention(r) ?? '', cell: (c) => (needsAttention(c.row.original) ? <Badge tone="warn">{needsAttention(c.row.original)}</Badge> : null) },
  { header: 'Stage', accessorFn: (r) => `${r.currentStage + 1}/${r.stages.length} ${r.stages[r.currentStage]?.name ?? ''} (${r.stages[r.currentStage]?.phase ?? ''})` },
  { header: 'Started', accessorKey: 'startedAt', cell: (c) => <>{<Time at={c.row.original.startedAt} />} by {c.row.original.startedBy}</> },
];

/** Rollouts, the ones that need someone first; ?blocklist= and ?status= filter (in the URL). */
export function RolloutsPage() {
  const { can } = useMe();
  const [params, setParams] = useSearchParams();
  const blocklist = params.get('blocklist') ?? '';
  const status = params.get('status') ?? '';
  const rollouts = useQuery({
    queryKey: ['rollouts', blocklist, status],
    queryFn: () => ok(api.GET('/rollouts', { params: { query: { ...(blocklist ? { blocklist } : {}), ...(status === 'active' ? { status } : {}) } } })),
  });
  const set = (k: string, v: string) => {
    const n = new URLSearchParams(params);
    if (v) n.set(k, v);
    else n.delete(k);
    setParams(n, { replace: true });
  };
  return (
    <>
      <h1>Rollouts</h1>
      <div className="row">
        {can('operator') && <Link className="button primary" to="/rollouts/new">Start a rollout</Link>}
        <form className="filters" aria-label="Filter rollouts" onSubmit={(e) => e.preventDefault()}>
          <label>Blocklist<input value={blocklist} onChange={(e) => set('blocklist', e.target.value)} /></label>
          <label>Status<select value={status} onChange={(e) => set('status', e.target.value)}><option value="">any</option><option value="active">active</option></select></label>
        </form>
      </div>
      <Async q={rollouts} what="rollouts">
        {(all) => {
          if (all.length === 0)
            return (
              <Empty title="No rollout yet">
                <p>A rollout takes a new blocklist version to the fleet stage by stage (canary first), with gates between stages. It starts from the fleet baseline: assign a first version on its blocklist's page, commit a newer one, then start a rollout here or with <code>cgfence rollout start plan.yaml</code>.</p>
              </Empty>
            );
          const sorted = [...all].sort((a, b) => Number(needsAttention(b) !== null) - Number(needsAttention(a) !== null) || b.startedAt.localeCompare(a.startedAt));
          return <DataTable caption="Rollouts, the ones that need attention first" data={sorted} columns={columns} rowKey={(r) => r.id} />;
        }}
      </Async>
    </>
  );
}

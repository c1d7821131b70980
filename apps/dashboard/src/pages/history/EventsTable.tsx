import type { ColumnDef } from '@tanstack/react-table';
import { Link } from 'react-router';
import type { BlockEvent } from '../../api/types';
import { DataTable } from '../../components/DataTable';
import { Badge, Time } from '../../components/ui';

const columns: ColumnDef<BlockEvent, unknown>[] = [
  { header: 'Time', accessorKey: 'time', cell: (c) => <Time at={c.row.original.time} /> },
  { header: 'Host', accessorKey: 'host', cell: (c) => <Link to={`/hosts/${encodeURIComponent(c.row.original.host)}`}>{c.row.original.host}</Link> },
  { header: 'Action', accessorKey: 'action', cell: (c) => <Badge tone={c.row.original.action === 'blocked' ? 'bad' : 'warn'}>{c.row.original.action}</Badge> },
  {
    header: 'Tried',
    accessorFn: (e) => [e.qname ?? e.destination ?? '', e.cnameTarget ?? ''].join(' '),
    cell: (c) => <Tried event={c.row.original} />,
  },
  { header: 'Entry', accessorFn: (e) => e.entry ?? '' },
  { header: 'Command', accessorFn: (e) => e.cmdline ?? e.comm ?? '', cell: (c) => <code className="cmd" title={c.row.original.cmdline ?? ''}>{c.row.original.cmdline ?? c.row.original.comm ?? '—'}</code> },
  { header: 'Run', accessorFn: (e) => e.runId ?? '', cell: (c) => (c.row.original.runId ? <Link to={`/runs/${encodeURIComponent(c.row.original.runId)}`}>{c.row.original.runId.slice(0, 12)}</Link> : '—') },
  { header: 'Labels', accessorFn: (e) => Object.entries(e.labels).map(([k, v]) => `${k}=${v}`).join(' '), enableSorting: false },
  { header: 'Version', accessorFn: (e) => (e.blocklist ? `${e.blocklist} v${e.version ?? '?'}` : '') },
];

/** The asked name (or address), and for a chain block the listed name its answer led to. */
function Tried({ event }: { event: BlockEvent }) {
  const asked = <code>{event.qname ?? event.destination ?? '—'}</code>;
  if (!event.cnameTarget) return asked;
  return (
    <span title={`the answer for ${event.qname ?? '?'} led (CNAME/DNAME) to the listed name ${event.cnameTarget}`}>
      {asked} <span className="muted">via</span> <code>{event.cnameTarget}</code>
    </span>
  );
}

export function EventsTable({ events }: { events: BlockEvent[] }) {
  return <DataTable caption="Block events, newest first" data={events} columns={columns} rowKey={(e) => e.id} />;
}

import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import type { ColumnDef } from '@tanstack/react-table';
import { type FormEvent } from 'react';
import { Link, useNavigate } from 'react-router';
import { api, ok } from '../../api/client';
import type { Blocklist } from '../../api/types';
import { useMe } from '../../auth';
import { DataTable } from '../../components/DataTable';
import { Async, Empty, ErrorView, Time } from '../../components/ui';

const columns: ColumnDef<Blocklist, unknown>[] = [
  { header: 'Name', accessorKey: 'name', cell: (c) => <Link to={`/blocklists/${encodeURIComponent(c.row.original.name)}`}>{c.row.original.name}</Link> },
  { header: 'Description', accessorKey: 'description' },
  { header: 'Owner', accessorKey: 'owner' },
  { header: 'Latest version', accessorKey: 'latestVersion' },
  { header: 'Updated', accessorKey: 'updatedAt', cell: (c) => <Time at={c.row.original.updatedAt} /> },
];

export function BlocklistsPage() {
  const { can } = useMe();
  const qc = useQueryClient();
  const nav = useNavigate();
  const lists = useQuery({ queryKey: ['blocklists'], queryFn: () => ok(api.GET('/blocklists')) });
  const create = useMutation({
    mutationFn: (body: { name: string; description: string }) => ok(api.POST('/blocklists', { body })),
    onSuccess: (_r, body) => {
      void qc.invalidateQueries({ queryKey: ['blocklists'] });
      void nav(`/blocklists/${encodeURIComponent(body.name)}`);
    },
  });
  const submit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const fd = new FormData(e.currentTarget);
    create.mutate({ name: String(fd.get('name')).trim(), description: String(fd.get('description') ?? '') });
  };
  return (
    <>
      <h1>Blocklists</h1>
      <Async q={lists} what="blocklists">
        {(all) =>
          all.length === 0 ? (
            <Empty title="No blocklist yet">
              <p>A blocklist names what deploy scripts must not reach (one name, <code>*.suffix</code> or CIDR per line). Create one below, or with</p>
              <pre>{`cgfence blocklist create deploy-safety --description "what deploys must not depend on"\nprintf 'github.com\\n*.githubusercontent.com\\n' | cgfence blocklist commit deploy-safety --file - -m 'first list'`}</pre>
            </Empty>
          ) : (
            <DataTable caption="Blocklists" data={all} columns={columns} rowKey={(b) => b.name} />
          )
        }
      </Async>
      {can('operator') && (
        <section>
          <h2>New blocklist</h2>
          <form className="filters" onSubmit={submit} aria-label="Create a blocklist">
            <label>Name<input name="name" required pattern="[a-z0-9][a-z0-9._\-]{0,62}" title="lower-case letters, digits, '.', '_' or '-'" placeholder="deploy-safety" /></label>
            <label>Description<input name="description" /></label>
            <div className="row"><button type="submit" className="primary" disabled={create.isPending}>Create</button></div>
          </form>
          {create.error && <ErrorView error={create.error} />}
        </section>
      )}
    </>
  );
}

import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import type { ColumnDef } from '@tanstack/react-table';
import { useState, type FormEvent } from 'react';
import { Link, useParams, useSearchParams } from 'react-router';
import { api, ApiError, ok } from '../../api/client';
import type { Version } from '../../api/types';
import { useMe } from '../../auth';
import { DataTable } from '../../components/DataTable';
import { Async, Badge, ConfirmButton, Empty, ErrorView, Time } from '../../components/ui';

interface BadLine {
  line: number;
  entry: string;
  reason: string;
}

/** The bad lines of an entries.invalid error (its details), if that is what it is. */
function badLines(e: unknown): BadLine[] {
  if (!(e instanceof ApiError) || e.body.code !== 'entries.invalid' || !Array.isArray(e.body.details)) return [];
  return e.body.details as BadLine[];
}

export function BlocklistPage() {
  const name = useParams().name!;
  const { can } = useMe();
  const [params, setParams] = useSearchParams();
  const path = { path: { name } };
  const list = useQuery({ queryKey: ['blocklist', name], queryFn: () => ok(api.GET('/blocklists/{name}', { params: path })) });
  const versions = useQuery({ queryKey: ['blocklist', name, 'versions'], queryFn: () => ok(api.GET('/blocklists/{name}/versions', { params: path })) });
  const fleet = useQuery({ queryKey: ['fleet'], queryFn: () => ok(api.GET('/fleet')) });
  const from = params.get('from');
  const to = params.get('to');
  const shown = params.get('version');
  const setParam = (k: string, v: string | null) => {
    const next = new URLSearchParams(params);
    if (v) next.set(k, v);
    else next.delete(k);
    setParams(next, { replace: true });
  };
  const baseline = fleet.data?.baseline?.blocklist === name ? fleet.data.baseline.version : null;

  const columns: ColumnDef<Version, unknown>[] = [
    { header: 'Version', accessorKey: 'version', cell: (c) => <button type="button" className="link" onClick={() => setParam('version', String(c.row.original.version))}>v{c.row.original.version}</button> },
    { header: 'Message', accessorKey: 'message' },
    { header: 'Author', accessorKey: 'committedBy' },
    { header: 'Committed', accessorKey: 'committedAt', cell: (c) => <Time at={c.row.original.committedAt} /> },
    { header: 'Entries', accessorKey: 'entryCount' },
    { header: 'Change', accessorFn: (v) => `+${v.addedCount} −${v.removedCount}` },
    { header: 'Hash', accessorKey: 'contentHash', cell: (c) => <code title={c.row.original.contentHash}>{c.row.original.contentHash.slice(0, 12)}</code> },
    {
      header: 'Baseline',
      id: 'baseline',
      enableSorting: false,
      cell: (c) => (c.row.original.version === baseline ? <Badge tone="ok">baseline</Badge> : can('operator') ? <AssignButton name={name} version={c.row.original.version} baseline={baseline} /> : null),
    },
  ];

  return (
    <>
      <p><Link to="/blocklists">← Blocklists</Link></p>
      <Async q={list} what="the blocklist">
        {(b) => (
          <>
            <h1>{b.name}</h1>
            <p>{b.description || <span className="muted">no description</span>} · owner {b.owner} · created <Time at={b.createdAt} /> by {b.createdBy}</p>
          </>
        )}
      </Async>
      <section>
        <h2>Versions</h2>
        <Async q={versions} what="versions">
          {(vs) =>
            vs.length === 0 ? (
              <Empty title="No version yet">
                <p>Commit the first version below: one entry per line (<code>example.com</code>, <code>*.example.com</code>, <code>10.0.0.0/8</code>), <code># comments</code> allowed.</p>
              </Empty>
            ) : (
              <>
                <DataTable caption={`Versions of ${name}`} data={[...vs].reverse()} columns={columns} rowKey={(v) => String(v.version)} />
                <form className="filters" aria-label="Compare two versions" onSubmit={(e) => e.preventDefault()}>
                  <label>Diff from<select value={from ?? ''} onChange={(e) => setParam('from', e.target.value)}><option value="">—</option><option value="0">0 (empty)</option>{vs.map((v) => <option key={v.version} value={v.version}>v{v.version}</option>)}</select></label>
                  <label>to<select value={to ?? ''} onChange={(e) => setParam('to', e.target.value)}><option value="">—</option>{vs.map((v) => <option key={v.version} value={v.version}>v{v.version}</option>)}</select></label>
                </form>
              </>
            )
          }
        </Async>
      </section>
      {from !== null && to !== null && <Diff name={name} from={from} to={to} />}
      {shown !== null && <Entries name={name} version={shown} onClose={() => setParam('version', null)} />}
      {can('operator') && <CommitForm name={name} latest={list.data?.latestVersion ?? 0} />}
      {(versions.data?.length ?? 0) > 0 && <Replay name={name} versions={versions.data!.map((v) => v.version)} />}
    </>
  );
}

function AssignButton({ name, version, baseline }: { name: string; version: number; baseline: number | null }) {
  const qc = useQueryClient();
  const rollback = baseline !== null && version < baseline;
  return (
    <ConfirmButton
      label={rollback ? 'Roll back to this' : 'Make baseline'}
      title={rollback ? `Roll ${name} back to v${version}?` : `Make ${name} v${version} the fleet baseline?`}
      danger={rollback}
      consequence={
        <p>
          Every host that no rollout stage covers enforces <b>{name} v{version}</b> on its next sync
          {rollback ? <>, going back from v{baseline}: this is a rollback and is recorded as one.</> : '.'} To go host group by host group instead,{' '}
          <Link to={`/rollouts/new?blocklist=${encodeURIComponent(name)}&version=${version}`}>start a rollout</Link>.
        </p>
      }
      confirmLabel={rollback ? 'Roll back' : 'Assign'}
      onConfirm={async () => {
        await ok(api.POST('/blocklists/{name}/assign', { params: { path: { name } }, body: { version, ...(rollback ? { rollback: true } : {}) } }));
        await qc.invalidateQueries();
      }}
    />
  );
}

function Diff({ name, from, to }: { name: string; from: string; to: string }) {
  const diff = useQuery({ queryKey: ['blocklist', name, 'diff', from, to], queryFn: () => ok(api.GET('/blocklists/{name}/diff', { params: { path: { name }, query: { from: Number(from), to: Number(to) } } })) });
  return (
    <section>
      <h2>Diff v{from} → v{to}</h2>
      <Async q={diff} what="the diff">
        {(d) =>
          d.added.length + d.removed.length === 0 ? (
            <p className="muted">No difference.</p>
          ) : (
            <pre className="diff" aria-label="Diff">
              {d.removed.map((e) => <div key={`-${e.value}`} className="del">- {e.value}</div>)}
              {d.added.map((e) => <div key={`+${e.value}`} className="add">+ {e.value}{e.comment ? `  # ${e.comment}` : ''}</div>)}
            </pre>
          )
        }
      </Async>
    </section>
  );
}

function Entries({ name, version, onClose }: { name: string; version: string; onClose(): void }) {
  const v = useQuery({ queryKey: ['blocklist', name, 'version', version], queryFn: () => ok(api.GET('/blocklists/{name}/versions/{version}', { params: { path: { name, version: Number(version) }, query: {} } })) });
  return (
    <section>
      <h2>v{version} entries <button type="button" onClick={onClose}>Close</button></h2>
      <Async q={v} what="the entries">
        {(d) => <pre className="entries">{d.entries.map((e) => `${e.value}${e.resolve ? ' !resolve' : ''}${e.comment ? `  # ${e.comment}` : ''}`).join('\n') || '(empty)'}</pre>}
      </Async>
    </section>
  );
}

function CommitForm({ name, latest }: { name: string; latest: number }) {
  const qc = useQueryClient();
  const [text, setText] = useState('');
  const [message, setMessage] = useState('');
  const commit = useMutation({
    mutationFn: () =>
      ok(
        api.POST('/blocklists/{name}/versions', {
          params: { path: { name }, query: { message, expectedVersion: latest } },
          // The blocklist file format, as text/plain: the server names every bad line.
          body: text,
          bodySerializer: (b: unknown) => b as string,
          headers: { 'Content-Type': 'text/plain' },
        }),
      ),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['blocklist', name] }),
  });
  const bad = badLines(commit.error);
  const badAt = new Map(bad.map((b) => [b.line, b]));
  const loadLatest = async () => {
    if (latest === 0) return;
    const res = await fetch(`/blocklists/${encodeURIComponent(name)}/versions/${latest}?format=text`, { headers: { Authorization: `Bearer ${sessionStorage.getItem('cgfence.token') ?? ''}` } });
    if (res.ok) setText(await res.text());
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    commit.mutate();
  };
  return (
    <section>
      <h2>Commit a new version</h2>
      <form onSubmit={submit} aria-label="Commit a new version" className="stack">
        <div className="row">
          {latest > 0 && <button type="button" onClick={() => void loadLatest()}>Start from v{latest}</button>}
          <label className="file">
            Load a file
            <input type="file" accept=".txt,text/plain" onChange={(e) => void e.target.files?.[0]?.text().then(setText)} />
          </label>
        </div>
        <label htmlFor="entries">Entries (one per line)</label>
        <textarea id="entries" rows={10} value={text} onChange={(e) => setText(e.target.value)} spellCheck={false} aria-invalid={bad.length > 0} aria-describedby={bad.length ? 'bad-lines' : undefined} />
        {bad.length > 0 && (
          <ol id="bad-lines" className="lines" aria-label="Lines with errors">
            {text.split('\n').map((l, i) => {
              const b = badAt.get(i + 1);
              return (
                <li key={i} value={i + 1} className={b ? 'bad-line' : undefined} data-line={i + 1}>
                  <code>{l || ' '}</code>
                  {b && <span className="reason"> ← line {i + 1}: {b.reason}</span>}
                </li>
              );
            })}
          </ol>
        )}
        <label>Message<input value={message} onChange={(e) => setMessage(e.target.value)} maxLength={2000} placeholder="why this change" /></label>
        <div className="row">
          <button type="submit" className="primary" disabled={commit.isPending}>Commit</button>
          {commit.data && <span role="status">{commit.data.created ? `Committed v${commit.data.version.version}` : 'Same content as the latest version: nothing committed'}</span>}
        </div>
        {commit.error && <ErrorView error={commit.error} />}
      </form>
    </section>
  );
}

function Replay({ name, versions }: { name: string; versions: number[] }) {
  const [version, setVersion] = useState(versions[versions.length - 1]!);
  const [since, setSince] = useState('7d');
  const replay = useMutation({ mutationFn: () => ok(api.POST('/blocklists/{name}/replay', { params: { path: { name } }, body: { version, since } })) });
  return (
    <section>
      <h2>Replay against the history</h2>
      <p className="muted">Which names that recorded runs contacted would this version have blocked? Nothing changes on any host.</p>
      <form className="filters" aria-label="Replay a version" onSubmit={(e) => { e.preventDefault(); replay.mutate(); }}>
        <label>Version<select value={version} onChange={(e) => setVersion(Number(e.target.value))}>{versions.map((v) => <option key={v} value={v}>v{v}</option>)}</select></label>
        <label>Runs since<input value={since} onChange={(e) => setSince(e.target.value)} /></label>
        <div className="row"><button type="submit" disabled={replay.isPending}>Replay</button></div>
      </form>
      {replay.error && <ErrorView error={replay.error} />}
      {replay.data && (
        <div>
          <p>{replay.data.runsExamined} runs examined; {replay.data.runs.length} would have hit a block.</p>
          {replay.data.domains.length > 0 && (
            <ul>
              {replay.data.domains.map((d) => <li key={d.name}><code>{d.name}</code> (entry <code>{d.entry}</code>): {d.runs} runs on {d.hosts} hosts</li>)}
            </ul>
          )}
        </div>
      )}
    </section>
  );
}

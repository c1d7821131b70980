import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent } from 'react';
import { api, ok } from '../../api/client';
import { Async, Badge, ConfirmButton, ErrorView, Time } from '../../components/ui';

/** API tokens (admin): issue one (its secret shown once) and revoke. */
export function TokensPage() {
  const qc = useQueryClient();
  const tokens = useQuery({ queryKey: ['tokens'], queryFn: () => ok(api.GET('/tokens')) });
  const issue = useMutation({
    mutationFn: (body: { name: string; role: 'viewer' | 'operator' | 'admin' }) => ok(api.POST('/tokens', { body })),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['tokens'] }),
  });
  const submit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const fd = new FormData(e.currentTarget);
    issue.mutate({ name: String(fd.get('name')).trim(), role: String(fd.get('role')) as 'viewer' });
  };
  return (
    <>
      <h1>API tokens</h1>
      <form className="filters" onSubmit={submit} aria-label="Issue a token">
        <label>Name<input name="name" required maxLength={200} placeholder="ci-deployer" /></label>
        <label>Role<select name="role" defaultValue="viewer"><option>viewer</option><option>operator</option><option>admin</option></select></label>
        <div className="row"><button type="submit" className="primary" disabled={issue.isPending}>Issue</button></div>
      </form>
      {issue.error && <ErrorView error={issue.error} />}
      {issue.data && (
        <p className="secret" role="status">
          Token for {issue.data.token.name} ({issue.data.token.role}), shown once: <code data-testid="new-secret">{issue.data.secret}</code>
        </p>
      )}
      <Async q={tokens} what="tokens">
        {(ts) => (
          <div className="table-wrap">
            <table>
              <caption className="sr-only">API tokens</caption>
              <thead><tr><th scope="col">Name</th><th scope="col">Role</th><th scope="col">Issued</th><th scope="col">State</th><th scope="col"><span className="sr-only">Actions</span></th></tr></thead>
              <tbody>
                {ts.map((t) => (
                  <tr key={t.id}>
                    <td>{t.name}</td>
                    <td><Badge tone="info">{t.role}</Badge></td>
                    <td><Time at={t.createdAt} /> by {t.createdBy}</td>
                    <td>{t.revokedAt ? <>revoked <Time at={t.revokedAt} /></> : 'active'}</td>
                    <td>
                      {!t.revokedAt && (
                        <ConfirmButton
                          label="Revoke"
                          danger
                          title={`Revoke ${t.name}?`}
                          confirmLabel="Revoke"
                          consequence={<p>Every request with token <b>{t.name}</b> ({t.role}) is refused from now on. This cannot be undone.</p>}
                          onConfirm={async () => {
                            await ok(api.DELETE('/tokens/{id}', { params: { path: { id: t.id } } }));
                            await qc.invalidateQueries({ queryKey: ['tokens'] });
                          }}
                        />
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Async>
    </>
  );
}

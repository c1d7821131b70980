import { useMutation, useQuery } from '@tanstack/react-query';
import { useEffect, useMemo, useState } from 'react';
import { Link, useNavigate, useSearchParams } from 'react-router';
import { parseDocument } from 'yaml';
import { api, ok } from '../../api/client';
import type { RolloutPlan } from '../../api/types';
import { useMe } from '../../auth';
import { ErrorView } from '../../components/ui';

function template(blocklist: string, version: string): string {
  return `blocklist: ${blocklist || 'deploy-safety'}
version: ${version || 2}
onFailure: pause          # or rollback
stages:
  - name: canary
    select: { labels: { cohort: canary } }
    mode: enforce
    soak: 10m
    gates: { convergenceTimeout: 5m, maxFailures: 0, blockRateFactor: 3 }
  - name: everyone
    select: { percent: 100 }
    gates: { manualApproval: true }
`;
}

/** The plan text as a value, or the YAML/JSON error with its line. */
function parsePlan(text: string): { value: unknown } | { error: string } {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length) return { error: doc.errors.map((e) => e.message.split('\n')[0]).join('; ') };
  return { value: doc.toJS() as unknown };
}

function useDebounced<T>(v: T, ms: number): T {
  const [d, setD] = useState(v);
  useEffect(() => {
    const t = setTimeout(() => setD(v), ms);
    return () => clearTimeout(t);
  }, [v, ms]);
  return d;
}

/**
 * The plan editor: YAML (or JSON), checked as you type by the server's own
 * rules (POST /rollouts/preview, a dry run of POST /rollouts), with the hosts
 * each stage would select.
 */
export function NewRolloutPage() {
  const { can } = useMe();
  const nav = useNavigate();
  const [params] = useSearchParams();
  const [text, setText] = useState(() => template(params.get('blocklist') ?? '', params.get('version') ?? ''));
  const debounced = useDebounced(text, 250);
  const parsed = useMemo(() => parsePlan(debounced), [debounced]);
  const preview = useQuery({
    queryKey: ['rollout-preview', debounced],
    enabled: 'value' in parsed,
    queryFn: () => ok(api.POST('/rollouts/preview', { body: 'value' in parsed ? parsed.value : {} })),
  });
  const start = useMutation({
    mutationFn: () => {
      const p = parsePlan(text);
      if ('error' in p) throw new Error(p.error);
      // The server checks the plan (the preview above already showed what it says).
      return ok(api.POST('/rollouts', { body: p.value as RolloutPlan }));
    },
    onSuccess: (r) => void nav(`/rollouts/${encodeURIComponent(r.id)}`),
  });
  const problems = preview.data?.error ? (Array.isArray(preview.data.error.details) ? (preview.data.error.details as { field: string; reason: string }[]) : null) : null;
  return (
    <>
      <p><Link to="/rollouts">← Rollouts</Link></p>
      <h1>Start a rollout</h1>
      <div className="split">
        <div className="stack">
          <label htmlFor="plan">Plan (YAML or JSON, the same file <code>cgfence rollout start</code> takes)</label>
          <textarea id="plan" rows={20} value={text} onChange={(e) => setText(e.target.value)} spellCheck={false} aria-describedby="plan-check" />
          {can('operator') && (
            <div className="row">
              <button type="button" className="primary" disabled={start.isPending || !preview.data?.valid || debounced !== text} onClick={() => start.mutate()}>Start rollout</button>
            </div>
          )}
          {start.error && <ErrorView error={start.error} />}
        </div>
        <div id="plan-check" aria-live="polite">
          <h2>Check</h2>
          {'error' in parsed ? (
            <p className="bad">Not valid YAML: {parsed.error}</p>
          ) : preview.error ? (
            <ErrorView error={preview.error} />
          ) : !preview.data ? (
            <p className="muted">Checking…</p>
          ) : preview.data.valid ? (
            <p className="ok">This plan would start now.</p>
          ) : (
            <div className="bad">
              <p>{problems ? 'The server would refuse it:' : preview.data.error?.message}</p>
              {problems && <ul>{problems.map((p, i) => <li key={i}><code>{p.field}</code>: {p.reason}</li>)}</ul>}
            </div>
          )}
          {preview.data && preview.data.stages.length > 0 && (
            <>
              <h2>Hosts per stage</h2>
              <ol>
                {preview.data.stages.map((s, i) => (
                  <li key={i}>
                    <b>{s.name}</b>: {s.hosts.length} host{s.hosts.length === 1 ? '' : 's'}
                    {s.hosts.length > 0 && <span className="muted"> ({s.hosts.slice(0, 8).join(', ')}{s.hosts.length > 8 ? ', …' : ''})</span>}
                  </li>
                ))}
              </ol>
            </>
          )}
        </div>
      </div>
    </>
  );
}

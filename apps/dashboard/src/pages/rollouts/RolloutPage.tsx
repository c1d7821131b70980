import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import { Link, useParams } from 'react-router';
import { api, ok } from '../../api/client';
import type { Rollout } from '../../api/types';
import { useMe } from '../../auth';
import { Async, Badge, ConfirmButton, Time } from '../../components/ui';
import { needsAttention } from './attention';
import { STATUS_TONE } from './RolloutsPage';

const GATE_TONE = { pending: 'idle', passed: 'ok', failed: 'bad', 'n/a': 'idle' } as const;

function useNow(ms = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

function Countdown({ until }: { until: string }) {
  const now = useNow();
  const s = Math.max(0, Math.round((Date.parse(until) - now) / 1000));
  return <span role="timer">{s > 0 ? `soak ends in ${Math.floor(s / 60)}m ${s % 60}s` : 'soak over'}</span>;
}

/** Block rate before vs during the stage's soak (blocks per host per minute), as two bars. */
function RateBars({ before, during, factor }: { before: number; during: number; factor: number | null }) {
  const max = Math.max(before, during, 1e-9);
  return (
    <figure className="bars" aria-label={`Block rate: before ${before.toFixed(3)}, during ${during.toFixed(3)} blocks per host per minute`}>
      <div><span>before</span><i style={{ width: `${(before / max) * 100}%` }} /><b>{before.toFixed(3)}</b></div>
      <div><span>during</span><i className="during" style={{ width: `${(during / max) * 100}%` }} /><b>{during.toFixed(3)}</b></div>
      <figcaption>blocks per host per minute{factor !== null ? ` · ×${factor.toFixed(2)}` : ''}</figcaption>
    </figure>
  );
}

export function RolloutPage() {
  const id = useParams().id!;
  const { can } = useMe();
  const qc = useQueryClient();
  const rollout = useQuery({ queryKey: ['rollout', id], queryFn: () => ok(api.GET('/rollouts/{id}', { params: { path: { id } } })) });
  const history = useQuery({ queryKey: ['rollout', id, 'history'], queryFn: () => ok(api.GET('/rollouts/{id}/history', { params: { path: { id } } })) });
  const act = async (action: 'pause' | 'resume' | 'promote' | 'abort', r: Rollout, reason: string) => {
    const body = { stage: r.currentStage, ...(reason ? { reason } : {}) };
    const params = { path: { id } };
    if (action === 'pause') await ok(api.POST('/rollouts/{id}/pause', { params, body }));
    else if (action === 'resume') await ok(api.POST('/rollouts/{id}/resume', { params }));
    else if (action === 'promote') await ok(api.POST('/rollouts/{id}/promote', { params, body }));
    else await ok(api.POST('/rollouts/{id}/abort', { params, body }));
    await qc.invalidateQueries({ queryKey: ['rollout', id] });
  };
  return (
    <>
      <p><Link to="/rollouts">← Rollouts</Link></p>
      <Async q={rollout} what="the rollout">
        {(r) => {
          const attention = needsAttention(r);
          const active = r.status === 'running' || r.status === 'paused';
          const stage = r.stages[r.currentStage];
          return (
            <>
              <h1>
                {r.id} <Badge tone={STATUS_TONE[r.status]}>{r.status}</Badge>
              </h1>
              <p>
                <Link to={`/blocklists/${encodeURIComponent(r.blocklist)}?from=${r.previousVersion ?? 0}&to=${r.version}`}>{r.blocklist} v{r.previousVersion ?? '?'} → v{r.version}</Link> · on a failed gate: {r.onFailure} · started <Time at={r.startedAt} /> by {r.startedBy}
              </p>
              {attention && <p className="attention" role="status">Needs attention: {attention}</p>}
              {r.reason && !attention && <p>Reason: {r.reason}</p>}
              {can('operator') && active && (
                <div className="row actions">
                  {r.status === 'running' && (
                    <ConfirmButton label="Pause" title={`Pause ${r.id}?`} reason confirmLabel="Pause" consequence={<p>No stage moves on until someone resumes; hosts keep what they have now.</p>} onConfirm={(reason) => act('pause', r, reason)} />
                  )}
                  {r.status === 'paused' && (
                    <ConfirmButton label="Resume" title={`Resume ${r.id}?`} confirmLabel="Resume" consequence={<p>Stage {r.currentStage + 1} ({stage?.name}) goes on from where it stopped, with its gates.</p>} onConfirm={(reason) => act('resume', r, reason)} />
                  )}
                  {stage && r.status === 'running' && (
                    <ConfirmButton
                      label="Promote"
                      title={`Promote ${r.id}?`}
                      reason
                      confirmLabel="Promote"
                      consequence={<p>{r.currentStage + 1 < r.stages.length ? `Stage ${r.currentStage + 2} (${r.stages[r.currentStage + 1]!.name}) starts now, without waiting for stage ${r.currentStage + 1}'s soak or approval.` : `The rollout completes: ${r.blocklist} v${r.version} becomes the fleet baseline.`}</p>}
                      onConfirm={(reason) => act('promote', r, reason)}
                    />
                  )}
                  <ConfirmButton label="Abort" danger title={`Abort ${r.id}?`} reason confirmLabel="Abort the rollout" consequence={<p>Every host this rollout reached goes back to {r.blocklist} v{r.previousVersion ?? '?'} (the baseline).</p>} onConfirm={(reason) => act('abort', r, reason)} />
                </div>
              )}
              <ol className="stages" aria-label="Stages">
                {r.stages.map((s) => (
                  <li key={s.index} className={s.index === r.currentStage && active ? 'current' : undefined}>
                    <h2>
                      {s.index + 1}. {s.name} <Badge tone={s.phase === 'done' ? 'ok' : s.phase === 'pending' ? 'idle' : 'info'}>{s.phase}</Badge> <span className="muted">{s.mode}</span>
                    </h2>
                    <p>
                      <progress max={Math.max(s.hosts.selected, 1)} value={s.hosts.confirmed} aria-label={`${s.name}: hosts confirmed`} /> {s.hosts.confirmed}/{s.hosts.selected} hosts confirmed
                      {s.hosts.failed > 0 && <> · <span className="bad">{s.hosts.failed} failed</span></>}
                      {s.hosts.missing > 0 && <> · {s.hosts.missing} missing</>}
                    </p>
                    <p className="gates">
                      {Object.entries(s.gates).map(([g, st]) => <Badge key={g} tone={GATE_TONE[st]}>{g}: {st}</Badge>)}
                    </p>
                    {s.soakEndsAt && s.phase === 'soaking' && <p><Countdown until={s.soakEndsAt} /></p>}
                    {s.blockRate && <RateBars {...s.blockRate} />}
                    <p className="muted">started <Time at={s.startedAt} /> · converged <Time at={s.convergedAt} /></p>
                  </li>
                ))}
              </ol>
            </>
          );
        }}
      </Async>
      <section>
        <h2>Timeline</h2>
        <Async q={history} what="the history">
          {(h) => (
            <ol className="timeline">
              {h.map((e, i) => (
                <li key={i}><Time at={e.at} /> <b>{e.type}</b> by {e.actor} <code className="muted">{JSON.stringify(e.data)}</code></li>
              ))}
            </ol>
          )}
        </Async>
      </section>
    </>
  );
}

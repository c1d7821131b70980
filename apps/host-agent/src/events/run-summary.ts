import type { RunSummary } from '@cgfence/proto';
import type { DomainSeen } from '../runs/domain-tally';
import type { RunRecord } from '../runs/run-registry';

export interface RunSummaryContext {
  /** The fleet host id. */
  readonly host: string;
  readonly cohort: string | null;
  /** The signal that ended the run's command ('SIGKILL'), if one did. */
  readonly signal: string | null;
  readonly domains: { readonly names: readonly DomainSeen[]; readonly overflow: number };
  /** The policy in force when the run ended ('name vN', 'file:…'). */
  readonly policyVersion: string | null;
  /** When the run ended, if the record does not say (it does once finished). */
  readonly endedAt?: Date;
}

/** The summary sent on cgf.events.<host>.run when a run ends. */
export function buildRunSummary(run: RunRecord, ctx: RunSummaryContext): RunSummary {
  return {
    runId: run.runId,
    host: ctx.host,
    cohort: ctx.cohort,
    labels: { ...run.labels },
    command: run.command ?? null,
    startedAt: run.createdAt,
    endedAt: run.finishedAt ?? ctx.endedAt?.toISOString() ?? null,
    exitCode: run.exitCode,
    signal: ctx.signal,
    domains: ctx.domains.names.map((d) => ({ name: d.name, queries: d.queries, blocked: d.blocked, firstSeen: d.firstSeen, lastSeen: d.lastSeen })),
    overflow: ctx.domains.overflow,
    policyVersion: ctx.policyVersion,
    // Absent for runs adopted after a crash (no record of whom they ran as).
    ...(run.uid !== undefined ? { uid: run.uid, user: run.user ?? null } : {}),
  };
}

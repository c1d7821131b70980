/**
 * Which hosts a rollout's stages take, as assignments of the desired-state
 * document. Pure, and the same code answers "which stage is this host in"
 * for the gates, so what the server counts is what the agents do.
 *
 * - A stage selects by labels and/or a share. A share is taken "of the hosts
 *   earlier stages did not select" (deterministic buckets of the host id).
 * - A host follows the latest started stage that selects it: a cohort can go
 *   audit first and enforce in a later stage with the same labels.
 */
import { Assignment, assignmentSelects, HostIdentity, RolloutPlan, SignedDocument, StagePlan } from '@cgfence/proto';

export interface StageSelector {
  labels?: Record<string, string>;
  bucketBelow?: number;
  unless?: { labels?: Record<string, string>; bucketBelow?: number }[];
}

function ownSelector(s: StagePlan): { labels?: Record<string, string>; bucketBelow?: number } {
  return { ...(s.select.labels ? { labels: s.select.labels } : {}), ...(s.select.percent !== undefined ? { bucketBelow: s.select.percent } : {}) };
}

export function stageSelector(plan: RolloutPlan, index: number): StageSelector {
  const stage = plan.stages[index]!;
  const own = ownSelector(stage);
  if (stage.select.percent === undefined || index === 0) return own;
  return { ...own, unless: plan.stages.slice(0, index).map(ownSelector) };
}

/** The assignments of a rollout's started stages, latest first (the first that selects a host wins). */
export function rolloutAssignments(r: { id: string; plan: RolloutPlan; stage: number }, bundle: SignedDocument): Assignment[] {
  const out: Assignment[] = [];
  for (let i = r.stage; i >= 0; i--) {
    const st = r.plan.stages[i]!;
    out.push({
      ...stageSelector(r.plan, i),
      bundle,
      mode: st.mode,
      reason: `rollout ${r.id} stage ${i + 1}/${r.plan.stages.length} (${st.name})`,
      stage: { rollout: r.id, index: i },
    });
  }
  return out;
}

/** Stand-in for the bundle where only the selectors matter (counting, views). */
const UNSIGNED: SignedDocument = { payload: '', keyId: '', signature: '' };

/** The stage a host follows, or undefined (it stays on the baseline). */
export function stageOf(assignments: readonly Assignment[], host: HostIdentity): number | undefined {
  return assignments.find((a) => assignmentSelects(a, host))?.stage?.index;
}

/** stageOf for one rollout, its assignments built once for many hosts. */
export function stageIndexer(r: { id: string; plan: RolloutPlan; stage: number }): (host: HostIdentity) => number | undefined {
  const assignments = rolloutAssignments(r, UNSIGNED);
  return (host) => stageOf(assignments, host);
}

/** The hosts each stage selects by its own selector (the plan editor's preview). */
export function stageHosts(plan: RolloutPlan, hosts: readonly HostIdentity[]): string[][] {
  return plan.stages.map((_, i) => {
    const a: Assignment = { ...stageSelector(plan, i), bundle: UNSIGNED };
    return hosts.filter((h) => assignmentSelects(a, h)).map((h) => h.hostId);
  });
}

/** Hosts each stage selects by its own selector (for refusing a plan with an empty stage). */
export function hostsPerStage(plan: RolloutPlan, hosts: readonly HostIdentity[]): number[] {
  return stageHosts(plan, hosts).map((ids) => ids.length);
}


// Staged rollouts: the plan operators write (YAML or JSON), and the views the
// API and the CLI show.
import { z } from 'zod';

/** '90s', '10m', '1h', '500ms', or a number of seconds. */
export const DurationSchema = z.union([
  z.number().nonnegative(),
  z.string().regex(/^\d+(\.\d+)?(ms|s|m|h)$/, 'a duration like 30s, 10m or 1h'),
]);

export function durationMs(d: z.infer<typeof DurationSchema>): number {
  if (typeof d === 'number') return d * 1000;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(d)!;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  return Number(m[1]) * unit;
}

/** A number of hosts (3) or a share of the stage's hosts ('10%'). */
export const ThresholdSchema = z.union([z.number().int().nonnegative(), z.string().regex(/^\d+(\.\d+)?%$/, 'a count like 2 or a share like 10%')]);

/** How many of `of` hosts a threshold allows (a share rounds down). */
export function thresholdCount(t: z.infer<typeof ThresholdSchema>, of: number): number {
  return typeof t === 'number' ? t : Math.floor((Number(t.slice(0, -1)) / 100) * of);
}

export const StageGatesSchema = z
  .object({
    /** Every selected host (but maxMissing) must confirm the version within this. */
    convergenceTimeout: DurationSchema.default('5m'),
    /** Hosts that may not confirm (offline, stale) without failing convergence. */
    maxMissing: ThresholdSchema.default(0),
    /** Hosts that may reject or fail the bundle. */
    maxFailures: ThresholdSchema.default(0),
    /** Blocks per host per minute during the soak may grow at most this factor over the same hosts before the stage. */
    blockRateFactor: z.number().positive().optional(),
    /** The stage waits for `cgfence rollout promote` after its soak. */
    manualApproval: z.boolean().default(false),
  })
  .strict();

export const StagePlanSchema = z
  .object({
    name: z.string().min(1).max(100),
    /** Hosts with all these labels (e.g. {cohort: canary}) and/or this share of the hosts no earlier stage took. */
    select: z
      .object({
        labels: z.record(z.string(), z.string()).optional(),
        percent: z.number().gt(0).max(100).optional(),
      })
      .strict()
      .refine((s) => s.labels !== undefined || s.percent !== undefined, 'select needs labels and/or percent'),
    mode: z.enum(['audit', 'enforce']).default('enforce'),
    soak: DurationSchema.default(0),
    gates: StageGatesSchema.default({ convergenceTimeout: '5m', maxMissing: 0, maxFailures: 0, manualApproval: false }),
  })
  .strict();
export type StagePlan = z.infer<typeof StagePlanSchema>;

export const RolloutPlanSchema = z
  .object({
    blocklist: z.string().min(1),
    version: z.number().int().positive(),
    /** What a failed gate does: pause the rollout, or roll it back. */
    onFailure: z.enum(['pause', 'rollback']).default('pause'),
    stages: z.array(StagePlanSchema).min(1, 'a plan needs at least one stage'),
  })
  .strict();
export type RolloutPlan = z.infer<typeof RolloutPlanSchema>;
export type RolloutPlanInput = z.input<typeof RolloutPlanSchema>;

export const RolloutActionRequest = z
  .object({
    /** The stage the caller saw; a promotion for a stage that already moved on is refused. */
    stage: z.number().int().nonnegative().optional(),
    reason: z.string().max(500).optional(),
  })
  .strict();
export type RolloutActionRequest = z.infer<typeof RolloutActionRequest>;

export type RolloutStatus = 'running' | 'paused' | 'completed' | 'aborted' | 'rolled-back';
export type StagePhase = 'pending' | 'converging' | 'soaking' | 'awaiting-approval' | 'done';
export type GateState = 'pending' | 'passed' | 'failed' | 'n/a';

export interface StageView {
  index: number;
  name: string;
  mode: 'audit' | 'enforce';
  phase: StagePhase;
  hosts: { selected: number; confirmed: number; failed: number; missing: number };
  gates: { convergence: GateState; failures: GateState; blockRate: GateState; approval: GateState };
  blockRate: { before: number; during: number; factor: number | null } | null;
  startedAt: string | null;
  convergedAt: string | null;
  soakEndsAt: string | null;
}

export interface RolloutView {
  id: string;
  blocklist: string;
  version: number;
  previousVersion: number | null;
  status: RolloutStatus;
  onFailure: 'pause' | 'rollback';
  currentStage: number;
  stages: StageView[];
  startedAt: string;
  startedBy: string;
  updatedAt: string;
  /** Why it paused, failed or was aborted. */
  reason: string | null;
}

export interface RolloutHistoryEntry {
  at: string;
  actor: string;
  type: string;
  data: unknown;
}

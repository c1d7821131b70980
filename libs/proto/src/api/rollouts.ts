// Staged rollouts: the plan operators write (YAML or JSON), and the views the
// API and the CLI show.
import { z } from 'zod';
import { int32, IsoTime, VersionNumber } from './common';

const DURATION_TEXT = /^\d{1,9}(\.\d{1,3})?(ms|s|m|h)$/;

/** Longest soak or convergence timeout: a year, in seconds. */
export const MAX_DURATION_S = 365 * 86_400;

/** '90s', '10m', '1h', '500ms', or a number of seconds (at most a year). */
export const DurationSchema = z.union([
  z.number().nonnegative().max(MAX_DURATION_S),
  z
    .string()
    .regex(DURATION_TEXT, 'a duration like 30s, 10m or 1h')
    // zod runs this check even when the regex failed: only a well-formed duration is measured.
    .refine((d) => !DURATION_TEXT.test(d) || durationMs(d) <= MAX_DURATION_S * 1000, 'at most 365 days'),
]);

export function durationMs(d: number | string): number {
  if (typeof d === 'number') return d * 1000;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(d)!;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  return Number(m[1]) * unit;
}

/** A number of hosts (3) or a share of the stage's hosts ('10%'). */
export const ThresholdSchema = z.union([int32(0), z.string().regex(/^\d{1,3}(\.\d{1,6})?%$/, 'a count like 2 or a share like 10%')]);

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
    blockRateFactor: z.number().positive().max(1e6).optional(),
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
        labels: z.record(z.string().min(1).max(63), z.string().max(200)).optional(),
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
    blocklist: z.string().min(1).max(63),
    version: VersionNumber,
    /** What a failed gate does: pause the rollout, or roll it back. */
    onFailure: z.enum(['pause', 'rollback']).default('pause'),
    stages: z.array(StagePlanSchema).min(1, 'a plan needs at least one stage').max(100),
  })
  .strict();
export type RolloutPlan = z.infer<typeof RolloutPlanSchema>;
export type RolloutPlanInput = z.input<typeof RolloutPlanSchema>;

export const RolloutActionRequest = z
  .object({
    /** The stage the caller saw; a promotion for a stage that already moved on is refused. */
    stage: int32(0).optional(),
    reason: z.string().max(500).optional(),
  })
  .strict();
export type RolloutActionRequest = z.infer<typeof RolloutActionRequest>;

export const ROLLOUT_STATUSES = ['running', 'paused', 'completed', 'aborted', 'rolled-back'] as const;
export type RolloutStatus = (typeof ROLLOUT_STATUSES)[number];
export const STAGE_PHASES = ['pending', 'converging', 'soaking', 'awaiting-approval', 'done'] as const;
export type StagePhase = (typeof STAGE_PHASES)[number];
export const GATE_STATES = ['pending', 'passed', 'failed', 'n/a'] as const;
export type GateState = (typeof GATE_STATES)[number];

const Gate = z.enum(GATE_STATES);

export const StageViewSchema = z.object({
  index: z.number().int(),
  name: z.string(),
  mode: z.enum(['audit', 'enforce']),
  phase: z.enum(STAGE_PHASES),
  hosts: z.object({ selected: z.number().int(), confirmed: z.number().int(), failed: z.number().int(), missing: z.number().int() }),
  gates: z.object({ convergence: Gate, failures: Gate, blockRate: Gate, approval: Gate }),
  blockRate: z.object({ before: z.number(), during: z.number(), factor: z.number().nullable() }).nullable(),
  startedAt: IsoTime.nullable(),
  convergedAt: IsoTime.nullable(),
  soakEndsAt: IsoTime.nullable(),
});
export type StageView = z.infer<typeof StageViewSchema>;

export const RolloutViewSchema = z.object({
  id: z.string(),
  blocklist: z.string(),
  version: z.number().int(),
  previousVersion: z.number().int().nullable(),
  status: z.enum(ROLLOUT_STATUSES),
  onFailure: z.enum(['pause', 'rollback']),
  currentStage: z.number().int(),
  stages: z.array(StageViewSchema),
  startedAt: IsoTime,
  startedBy: z.string(),
  updatedAt: IsoTime,
  /** Why it paused, failed or was aborted. */
  reason: z.string().nullable(),
});
export type RolloutView = z.infer<typeof RolloutViewSchema>;

export const RolloutHistoryEntrySchema = z.object({ at: IsoTime, actor: z.string(), type: z.string(), data: z.unknown() });
export type RolloutHistoryEntry = z.infer<typeof RolloutHistoryEntrySchema>;

export const RolloutsQuery = z
  .object({
    blocklist: z.string().min(1).max(63).optional(),
    /** active (or running): running or paused rollouts only. */
    status: z.enum(['active', 'running']).optional(),
  })
  .strict();
export type RolloutsQuery = z.infer<typeof RolloutsQuery>;

import { z } from 'zod';

/** POST /rollouts/preview: whether POST /rollouts would start this plan now, and the hosts each stage selects. */
export const PlanPreview = z.object({
  valid: z.boolean(),
  /** The error POST /rollouts would answer with (details: the problems by field). */
  error: z.object({ code: z.string(), message: z.string(), details: z.unknown() }).nullable(),
  /** The hosts each stage selects by its own selector; empty when the plan does not parse. */
  stages: z.array(z.object({ name: z.string(), hosts: z.array(z.string()) })),
});
export type PlanPreview = z.infer<typeof PlanPreview>;

// Findings (one owner's dependency on one listed name), owners with their
// notification targets, and webhook deliveries: the REST requests and views.
import { z } from 'zod';
import { IsoTime } from './common';
import { parseIsoTime, parseTimeInRange } from './events';

export const FINDING_STATES = ['new', 'acknowledged', 'resolved', 'accepted'] as const;
export type FindingState = (typeof FINDING_STATES)[number];

/** What can make a notification, each switchable per target. */
export const TRIGGERS = [
  'finding.new',
  'finding.regression',
  'finding.accepted-expired',
  'finding.accepted-expiring',
  'rollout.gate-failed',
  'rollout.paused',
  'rollout.rolled-back',
  'rollout.completed',
  'host.rejected',
  'host.drifted',
  'killswitch.toggled',
] as const;
export type Trigger = (typeof TRIGGERS)[number];
/** A new target gets these unless it names its own. */
export const DEFAULT_TRIGGERS: readonly Trigger[] = ['finding.new', 'finding.regression', 'finding.accepted-expiring', 'finding.accepted-expired'];

/** '30d', '12h', '45m', '90s'. */
const SPAN = /^(\d{1,6})(s|m|h|d)$/;
const SPAN_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
export function spanMs(text: string): number | undefined {
  const m = SPAN.exec(text);
  return m ? Number(m[1]) * SPAN_MS[m[2] as keyof typeof SPAN_MS] : undefined;
}

const since = z.string().max(100).refine((s) => parseTimeInRange(s) !== undefined, 'must be an ISO 8601 time (years 1 to 9999) or a duration back from now (7d)');

export const FindingsQuery = z
  .object({
    owner: z.string().min(1).max(200).optional(),
    state: z.enum(FINDING_STATES).optional(),
    /** Findings seen since: ISO time or a duration back from now. */
    since: since.optional(),
    entry: z.string().min(1).max(300).optional(),
    /** The edge turns `?limit=10` into a number. Default 200. */
    limit: z.number().int().min(1).max(1000).optional(),
  })
  .strict();
export type FindingsQuery = z.infer<typeof FindingsQuery>;

/** Path parameters of the findings, owners and notifications routes. */
export const FindingIdParams = z.object({ id: z.string().regex(/^f-[0-9a-f]{20}$/, 'a finding id like f-0123456789abcdef0123') }).strict();
export const DeliveryIdParams = z.object({ id: z.string().uuid('a delivery id (UUID)') }).strict();
export const OwnerParams = z.object({ key: z.string().regex(/^[A-Za-z0-9_.-]{1,63}$/, 'a label key like service'), value: z.string().min(1).max(200) }).strict();
export const OwnerTargetParams = OwnerParams.extend({ id: z.string().regex(/^tgt_[0-9a-f]{16}$/, 'a target id like tgt_0123456789abcdef') }).strict();

const note = z.string().trim().min(1, 'say why (--reason)').max(1000);

export const FindingTransitionRequest = z.object({ reason: note }).strict();
export type FindingTransitionRequest = z.infer<typeof FindingTransitionRequest>;

export const FindingAcceptRequest = z
  .object({
    reason: note,
    /** How long the dependency is tolerated ('30d') or until when (ISO time); it reopens then. */
    until: z
      .string()
      .max(100)
      .refine((s) => spanMs(s) !== undefined || parseIsoTime(s) !== undefined, 'a span like 30d or an ISO 8601 time (years 1 to 9999)')
      .default('30d'),
  })
  .strict();
export type FindingAcceptRequest = z.infer<typeof FindingAcceptRequest>;

export const FindingTransitionViewSchema = z.object({
  at: IsoTime,
  actor: z.string(),
  type: z.string(),
  note: z.string().nullable(),
});
export type FindingTransitionView = z.infer<typeof FindingTransitionViewSchema>;

const examples = z.array(z.string()).max(20);

export const FindingViewSchema = z.object({
  id: z.string(),
  /** The run label that names the owner (`service` by default) and its value; '' when the run had none. */
  ownerKey: z.string(),
  owner: z.string(),
  team: z.string().nullable(),
  /** The listed entry that matched. */
  entry: z.string(),
  state: z.enum(FINDING_STATES),
  /** A regression: it was resolved and happened again. */
  regression: z.boolean(),
  firstSeen: IsoTime,
  lastSeen: IsoTime,
  blocked: z.number().int().min(0),
  audited: z.number().int().min(0),
  /** Examples, at most 20 of each (the most recent kept); commands are redacted. */
  names: examples,
  hosts: examples,
  cohorts: examples,
  runs: examples,
  commands: examples,
  versions: examples,
  fixedAt: IsoTime.nullable(),
  acceptedUntil: IsoTime.nullable(),
  updatedAt: IsoTime,
});
export type FindingView = z.infer<typeof FindingViewSchema>;

export const FindingDetailViewSchema = FindingViewSchema.extend({ history: z.array(FindingTransitionViewSchema) });
export type FindingDetailView = z.infer<typeof FindingDetailViewSchema>;

const label = z.string().regex(/^[A-Za-z0-9_.-]{1,63}$/, 'a label key like service');
const webhookUrl = z
  .string()
  .max(2000)
  .refine((u) => {
    try {
      const p = new URL(u).protocol;
      return p === 'http:' || p === 'https:';
    } catch {
      return false;
    }
  }, 'an http:// or https:// URL');

export const WebhookTargetRequest = z
  .object({
    url: webhookUrl,
    /** json: cgfence's own body; slack: a Slack-compatible {text, blocks} body. */
    format: z.enum(['json', 'slack']).default('json'),
    triggers: z.array(z.enum(TRIGGERS)).min(1).max(TRIGGERS.length).optional(),
    /** Gather finding notifications into one message per period ('1h', '1d'); absent: each as it happens. */
    digest: z.string().regex(/^\d{1,4}(s|m|h|d)$/, 'a period like 1h or 1d').nullable().optional(),
    /** HMAC key for the signature; one is generated (and returned once) when absent. */
    secret: z.string().min(16, 'at least 16 characters').max(200).optional(),
  })
  .strict();
export type WebhookTargetRequest = z.infer<typeof WebhookTargetRequest>;

export const OwnerSetRequest = z
  .object({
    key: label.default('service'),
    value: z.string().min(1).max(200),
    team: z.string().min(1).max(200).optional(),
    webhook: WebhookTargetRequest.optional(),
  })
  .strict();
export type OwnerSetRequest = z.infer<typeof OwnerSetRequest>;

export const TargetViewSchema = z.object({
  id: z.string(),
  url: z.string(),
  format: z.enum(['json', 'slack']),
  triggers: z.array(z.enum(TRIGGERS)),
  digest: z.string().nullable(),
});
export type TargetView = z.infer<typeof TargetViewSchema>;

export const OwnerViewSchema = z.object({
  key: z.string(),
  value: z.string(),
  team: z.string().nullable(),
  targets: z.array(TargetViewSchema),
  updatedAt: IsoTime,
});
export type OwnerView = z.infer<typeof OwnerViewSchema>;

export const OwnerSetViewSchema = z.object({
  owner: OwnerViewSchema,
  /** The secret of a target made by this request, shown once. */
  secret: z.object({ targetId: z.string(), secret: z.string() }).optional(),
});
export type OwnerSetView = z.infer<typeof OwnerSetViewSchema>;

export const DeliveriesQuery = z
  .object({
    status: z.enum(['pending', 'delivered', 'dead', 'held', 'digested']).optional(),
    target: z.string().max(100).optional(),
    /** Default 100. */
    limit: z.number().int().min(1).max(1000).optional(),
  })
  .strict();
export type DeliveriesQuery = z.infer<typeof DeliveriesQuery>;

export const DeliveryViewSchema = z.object({
  id: z.string(),
  targetId: z.string(),
  url: z.string(),
  /** 'digest' for a digest message. */
  trigger: z.enum([...TRIGGERS, 'digest']),
  subject: z.string(),
  /** held: waiting for its target's digest; digested: sent inside one. */
  status: z.enum(['pending', 'delivered', 'dead', 'held', 'digested']),
  attempts: z.number().int().min(0),
  nextAttemptAt: IsoTime.nullable(),
  lastError: z.string().nullable(),
  createdAt: IsoTime,
  deliveredAt: IsoTime.nullable(),
});
export type DeliveryView = z.infer<typeof DeliveryViewSchema>;

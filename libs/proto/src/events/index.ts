// Block events and run summaries on their way from the agents to the central
// history: the NATS subjects, the JetStream stream and the message shapes.
//
//   cgf.events.<host>.block   one attributed event (blocked, audited, alert), message id = event id
//   cgf.events.<host>.run     a run's summary when it ends: labels, times, exit, the domains it resolved
//
// Hosts may publish only under cgf.events.<their id>. (libs/nats-auth); a
// publish is a plain publish whose JetStream ack arrives on the host's inbox.
import { z } from 'zod';

export const EVENTS_STREAM = { name: 'CGF_EVENTS', subjects: ['cgf.events.>'] } as const;

export const EVENT_SUBJECTS = {
  block: (host: string) => `cgf.events.${host}.block`,
  run: (host: string) => `cgf.events.${host}.run`,
} as const;

/** One journal record of an agent, as it travels (the agent's events.jsonl line). */
export const BlockEventSchema = z.object({
  /** UUIDv7: unique, orders by time; the JetStream message id and the table key. */
  id: z.string().uuid(),
  time: z.string(),
  host: z.string(),
  cohort: z.string().nullable(),
  runId: z.string().nullable(),
  labels: z.record(z.string(), z.string()),
  pid: z.number().int().nullable(),
  comm: z.string().nullable(),
  /** With secrets replaced by [REDACTED] on the host (libs/proto redactSecrets). */
  cmdline: z.string().nullable(),
  /** True when the agent took something out of cmdline; absent from older agents. */
  cmdlineRedacted: z.boolean().optional(),
  uid: z.number().int().nullable(),
  cgroupId: z.string().nullable(),
  qname: z.string().nullable(),
  qtype: z.string().nullable(),
  entry: z.string().nullable(),
  /**
   * The listed name an allowed qname's upstream answer led to (a CNAME or
   * DNAME target, or an answer record's owner); null when qname itself was
   * listed. Absent from older agents.
   */
  cnameTarget: z.string().nullable().optional(),
  action: z.enum(['blocked', 'audited', 'alert']),
  method: z.enum(['dns', 'ip']),
  /** 'name vN' for fleet bundles, 'file:…' for policy files. */
  policyVersion: z.string().nullable(),
  policyHash: z.string().nullable(),
  destination: z.string().nullable(),
  message: z.string().nullable(),
});
export type BlockEvent = z.infer<typeof BlockEventSchema>;

export const RunDomainSchema = z.object({
  name: z.string(),
  queries: z.number().int().nonnegative(),
  blocked: z.number().int().nonnegative(),
  firstSeen: z.string(),
  lastSeen: z.string(),
});
export type RunDomain = z.infer<typeof RunDomainSchema>;

/** Sent once when a run ends (message id `run-<runId>`). */
export const RunSummarySchema = z.object({
  runId: z.string(),
  host: z.string(),
  cohort: z.string().nullable(),
  labels: z.record(z.string(), z.string()),
  command: z.string().nullable(),
  startedAt: z.string(),
  endedAt: z.string().nullable(),
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  /** Distinct names the run resolved, allowed or not, aggregated on the host. */
  domains: z.array(RunDomainSchema),
  /** Names past the per-run limit, counted but not listed. */
  overflow: z.number().int().nonnegative(),
  policyVersion: z.string().nullable(),
  /** Whom the command ran as (the caller's SO_PEERCRED uid, or `--user`); absent from older agents. */
  uid: z.number().int().nonnegative().nullable().optional(),
  user: z.string().max(256).nullable().optional(),
});
export type RunSummary = z.infer<typeof RunSummarySchema>;

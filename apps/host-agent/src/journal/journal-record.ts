import { CommandRedactor } from '@cgfence/proto';
import type { DnsPolicyEvent } from '../dns/dns-events';
import { capCmdline, type ProcessDetails } from '../dns/process-details';
import { newEventId } from './event-id';

export type JournalAction = 'blocked' | 'audited' | 'alert';
export type JournalMethod = 'dns' | 'ip';
export type RunLabels = Readonly<Record<string, string>>;

/**
 * One line of events.jsonl. Unknown values are null, never absent, so every
 * line has the same keys. `cgroupId` is a decimal string (JSON has no 64-bit
 * integers).
 */
export interface JournalRecord {
  /** UUIDv7: unique, and orders events by time. */
  readonly id: string;
  /** ISO 8601, UTC. */
  readonly time: string;
  readonly host: string;
  readonly cohort: string | null;
  readonly runId: string | null;
  readonly labels: RunLabels;
  readonly pid: number | null;
  readonly comm: string | null;
  /** argv joined with spaces, with secrets replaced by [REDACTED] (libs/proto redactSecrets). */
  readonly cmdline: string | null;
  /** True when something was taken out of cmdline. */
  readonly cmdlineRedacted: boolean;
  readonly uid: number | null;
  readonly cgroupId: string | null;
  readonly qname: string | null;
  readonly qtype: string | null;
  /** The blocklist entry that matched. */
  readonly entry: string | null;
  /** The listed name an allowed qname's answer chain (CNAME/DNAME) led to; null otherwise. */
  readonly cnameTarget: string | null;
  readonly action: JournalAction;
  readonly method: JournalMethod;
  readonly policyVersion: string | null;
  readonly policyHash: string | null;
  /** 'address:port' of an IP-layer block; 'unix:' and the socket path of a unix guard refusal. */
  readonly destination: string | null;
  /** Free text, for alerts. */
  readonly message: string | null;
}

/** How a unix guard refusal's destination starts: it travels as method 'ip', with `unix:<socket path>`. */
export const UNIX_DESTINATION = 'unix:';

/** A unix guard refusal (a connect to a resolving daemon's socket), not a block of an address. */
export function isUnixRefusal(r: { readonly destination: string | null }): boolean {
  return (r.destination ?? '').startsWith(UNIX_DESTINATION);
}

/** Finds the run a kernel cgroup id belongs to (RunRegistry implements it). */
export interface RunLookup {
  byCgroupId(cgroupId: bigint): { readonly runId: string; readonly labels: RunLabels } | undefined;
}

export interface RecordContext {
  readonly host: string;
  readonly cohort?: string;
  readonly runs?: RunLookup;
  /** Id source; tests pass a fixed one. */
  readonly newId?: () => string;
  /** Takes secrets out of command lines (with `--redact-pattern`s); default: the built-in shapes only. */
  readonly redactor?: CommandRedactor;
}

const builtInRedactor = new CommandRedactor();

interface CommonFields {
  readonly time: Date;
  readonly process?: ProcessDetails;
  readonly policy?: { readonly version: string; readonly hash: string };
}

function base(ctx: RecordContext, fields: CommonFields): Omit<JournalRecord, 'qname' | 'qtype' | 'entry' | 'cnameTarget' | 'action' | 'method' | 'destination' | 'message'> {
  const p = fields.process;
  const run = p && ctx.runs ? ctx.runs.byCgroupId(p.cgroupId) : undefined;
  // Every record's command line passes here, before the journal, the block log and shipping see it.
  const cmd = p?.cmdline != null ? (ctx.redactor ?? builtInRedactor).redact(p.cmdline) : undefined;
  return {
    id: (ctx.newId ?? newEventId)(),
    time: fields.time.toISOString(),
    host: ctx.host,
    cohort: ctx.cohort ?? null,
    runId: run?.runId ?? null,
    labels: run ? { ...run.labels } : {},
    pid: p ? (p.tgid > 0 ? p.tgid : p.pid) : null,
    comm: p?.comm ?? null,
    // A marker can be longer than what it replaced: cut again to MAX_CMDLINE_BYTES.
    cmdline: cmd ? capCmdline(cmd.text) : null,
    cmdlineRedacted: cmd?.redacted ?? false,
    uid: p?.uid ?? null,
    cgroupId: p ? p.cgroupId.toString() : null,
    policyVersion: fields.policy?.version ?? null,
    policyHash: fields.policy?.hash ?? null,
  };
}

/** The journal record of a DNS proxy block or audit event. */
export function recordFromDnsEvent(event: DnsPolicyEvent, ctx: RecordContext): JournalRecord {
  return {
    ...base(ctx, event),
    qname: event.qname,
    qtype: event.qtype,
    entry: event.entry,
    cnameTarget: event.cnameTarget ?? null,
    action: event.kind === 'dns_block' ? 'blocked' : 'audited',
    method: 'dns',
    destination: null,
    message: null,
  };
}

/** What the kernel reports when it refuses a connection to a blocked address. */
export interface IpBlockEvent extends CommonFields {
  /** 'address:port' ('[v6]:port' for IPv6). */
  readonly destination: string;
  readonly audited?: boolean;
  /** The matching entry if known ('10.0.0.0/8'), or the '!resolve' name it was learned from. */
  readonly entry?: string;
}

export function recordFromIpBlock(event: IpBlockEvent, ctx: RecordContext): JournalRecord {
  return {
    ...base(ctx, event),
    qname: null,
    qtype: null,
    entry: event.entry ?? null,
    cnameTarget: null,
    action: event.audited === true ? 'audited' : 'blocked',
    method: 'ip',
    destination: event.destination,
    message: null,
  };
}

/** An alert (e.g. fail-open because the proxy died) for the same journal. */
export function alertRecord(
  message: string,
  ctx: RecordContext,
  fields: CommonFields & { readonly method?: JournalMethod },
): JournalRecord {
  return {
    ...base(ctx, fields),
    qname: null,
    qtype: null,
    entry: null,
    cnameTarget: null,
    action: 'alert',
    method: fields.method ?? 'dns',
    destination: null,
    message,
  };
}

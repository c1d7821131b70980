// Pure pieces of ingestion: a validated message becomes a row of
// block_events, written either as a COPY text line or as INSERT parameters.
import { BlockEvent, BlockEventSchema, CommandRedactor, reverseLabels, RunSummary, RunSummarySchema, timeInRange } from '@cgfence/proto';

/** Column order of block_events as ingestion writes it (COPY and INSERT alike). */
export const EVENT_COLUMNS = [
  'time', 'id', 'host', 'cohort', 'run_id', 'labels', 'pid', 'comm', 'cmdline', 'uid', 'cgroup_id',
  'qname', 'qname_rev', 'qtype', 'entry', 'action', 'method', 'policy_version', 'blocklist', 'version',
  'policy_hash', 'destination', 'message', 'cname_target',
] as const;

/** PostgreSQL types of the columns, for the multi-row INSERT casts. */
export const EVENT_TYPES: Record<(typeof EVENT_COLUMNS)[number], string> = {
  time: 'timestamptz', id: 'uuid', host: 'text', cohort: 'text', run_id: 'text', labels: 'jsonb', pid: 'int4', comm: 'text',
  cmdline: 'text', uid: 'int8', cgroup_id: 'text', qname: 'text', qname_rev: 'text', qtype: 'text', entry: 'text',
  action: 'text', method: 'text', policy_version: 'text', blocklist: 'text', version: 'int4', policy_hash: 'text',
  destination: 'text', message: 'text', cname_target: 'text',
};

export type EventRow = (string | number | null)[];

/** `core v12` → { blocklist: 'core', version: 12 }; anything else (file:…) → nulls. */
export function parsePolicyVersion(v: string | null): { blocklist: string | null; version: number | null } {
  const m = v === null ? null : /^(\S+) v(\d{1,9})$/.exec(v);
  return m ? { blocklist: m[1]!, version: Number(m[2]) } : { blocklist: null, version: null };
}

/** Lower case, no trailing dot: the form blocklist entries and filters use. */
export function normalizeQname(q: string): string {
  const n = q.toLowerCase();
  return n.endsWith('.') ? n.slice(0, -1) : n;
}

// PostgreSQL text cannot hold NUL; an agent never sends one, a forger might.
// eslint-disable-next-line no-control-regex -- NUL is exactly what is removed
const NUL = /\u0000/g;
// includes() first: almost no string has one, and it allocates nothing.
const clean = (s: string | null): string | null => (s === null || !s.includes('\u0000') ? s : s.replace(NUL, ''));

// Agents redact command lines before they ship them and say so in
// cmdlineRedacted; an agent older than that field sends them as they were:
// the server takes the built-in secret shapes out of those.
const olderAgents = new CommandRedactor();

/** The command line to store: as the agent sent it, or redacted here when an older agent did not. */
function storedCmdline(e: BlockEvent): string | null {
  if (e.cmdline === null || e.cmdlineRedacted !== undefined) return e.cmdline;
  return olderAgents.redact(e.cmdline).text;
}

export function toRow(e: BlockEvent, time: Date): EventRow {
  const qname = e.qname === null ? null : clean(normalizeQname(e.qname));
  const { blocklist, version } = parsePolicyVersion(e.policyVersion);
  return [
    time.toISOString(), e.id.toLowerCase(), clean(e.host), clean(e.cohort), clean(e.runId), clean(JSON.stringify(e.labels)), e.pid, clean(e.comm),
    clean(storedCmdline(e)), e.uid, clean(e.cgroupId), qname, qname === null ? null : reverseLabels(qname), clean(e.qtype), clean(e.entry),
    e.action, e.method, clean(e.policyVersion), blocklist, version, clean(e.policyHash), clean(e.destination), clean(e.message),
    e.cnameTarget === undefined || e.cnameTarget === null ? null : clean(normalizeQname(e.cnameTarget)),
  ];
}

/** One line of COPY's text format: tab separated, \N for NULL, backslash escapes. */
export function copyLine(row: EventRow): string {
  let line = '';
  for (let i = 0; i < row.length; i++) {
    const v = row[i]!;
    if (i > 0) line += '\t';
    line += v === null ? '\\N' : typeof v === 'number' ? String(v) : escapeCopy(v);
  }
  return line + '\n';
}

const COPY_SPECIAL = /[\\\n\r\t]/;
const COPY_SPECIALS = /[\\\n\r\t]/g;

export function escapeCopy(s: string): string {
  if (!COPY_SPECIAL.test(s)) return s;
  return s.replace(COPY_SPECIALS, (c) => (c === '\\' ? '\\\\' : c === '\n' ? '\\n' : c === '\r' ? '\\r' : '\\t'));
}

const UTF8 = new TextDecoder();

export type Decoded =
  | { kind: 'block'; row: EventRow; ms: number; labels: Record<string, string> }
  | { kind: 'run'; run: RunSummary }
  | { kind: 'malformed' | 'forged'; reason: string };

/**
 * Decodes one message of the CGF_EVENTS stream. The host in the subject is
 * the one NATS let publish it (libs/nats-auth); a body naming another host is
 * forged.
 */
export function decodeMessage(subject: string, data: Uint8Array): Decoded {
  const parts = subject.split('.');
  if (parts.length !== 4 || parts[0] !== 'cgf' || parts[1] !== 'events') return { kind: 'malformed', reason: `unexpected subject ${subject}` };
  const [, , host, what] = parts as [string, string, string, string];
  let json: unknown;
  try {
    json = JSON.parse(UTF8.decode(data));
  } catch (err) {
    return { kind: 'malformed', reason: `not JSON: ${(err as Error).message}` };
  }
  if (what === 'block') {
    const p = BlockEventSchema.safeParse(json);
    if (!p.success) return { kind: 'malformed', reason: p.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') };
    if (p.data.host !== host) return { kind: 'forged', reason: `event names host ${p.data.host} but came from ${host}` };
    const ms = Date.parse(p.data.time);
    // A time PostgreSQL cannot hold would fail the whole COPY of the batch it came in.
    if (!timeInRange(new Date(ms))) return { kind: 'malformed', reason: `time: not a time in the years 1 to 9999: ${p.data.time.slice(0, 64)}` };
    return { kind: 'block', row: toRow(p.data, new Date(ms)), ms, labels: p.data.labels };
  }
  if (what === 'run') {
    const p = RunSummarySchema.safeParse(json);
    if (!p.success) return { kind: 'malformed', reason: p.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') };
    if (p.data.host !== host) return { kind: 'forged', reason: `run summary names host ${p.data.host} but came from ${host}` };
    const times = [p.data.startedAt, p.data.endedAt, ...p.data.domains.flatMap((d) => [d.firstSeen, d.lastSeen])];
    if (times.some((t) => t !== null && !timeInRange(new Date(Date.parse(t))))) return { kind: 'malformed', reason: 'run summary has a time that is not a time in the years 1 to 9999' };
    return { kind: 'run', run: p.data };
  }
  return { kind: 'malformed', reason: `unknown message kind ${what}` };
}

// Pure pieces of the history queries: filters → SQL conditions, the page
// cursor, the aggregate keys, and the time split between the hourly rollup
// and the raw table.
import type { BlockEventView, EventFilter } from '@cgfence/proto';
import { decodeEventsCursor, encodeEventsCursor, reverseLabels } from '@cgfence/proto';

export class CursorError extends Error {}

/** (time in microseconds since the epoch, id) of the last row of a page, as opaque base64url. */
export function encodeCursor(timeUs: string, id: string): string {
  return encodeEventsCursor(timeUs, id);
}

/** The cursor's parts; the edge has already refused a cursor this throws for (EventsQuery.after). */
export function decodeCursor(cursor: string): { timeUs: string; id: string } {
  const c = decodeEventsCursor(cursor);
  if (!c) throw new CursorError('after must be the opaque cursor of a previous page');
  return c;
}

/** LIKE pattern for a substring, with LIKE's own wildcards escaped. */
export function containsPattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** Prefix range [lo, hi) on qname_rev of every name strictly under `suffix`. */
export function suffixRange(suffix: string): [string, string] {
  const rev = reverseLabels(suffix);
  return [`${rev}.`, `${rev}/`]; // '/' is the character after '.'
}

export class Params {
  readonly values: unknown[] = [];
  add(v: unknown, type?: string): string {
    this.values.push(v);
    return `$${this.values.length}${type ? `::${type}` : ''}`;
  }
}

export type FilterColumn = 'time' | 'host' | 'cohort' | 'run' | 'label' | 'domain' | 'pid' | 'cmd' | 'action' | 'method' | 'blocklist' | 'version';

/** Which filters are set (the rollup can serve only some of them). */
export function filtersUsed(f: EventFilter): FilterColumn[] {
  const used: FilterColumn[] = [];
  if (f.from || f.to) used.push('time');
  for (const k of ['host', 'cohort', 'run', 'label', 'domain', 'pid', 'cmd', 'action', 'method', 'blocklist', 'version'] as const) {
    const key = k === 'run' ? 'run' : k;
    if (f[key] !== undefined) used.push(k);
  }
  return used;
}

/** Conditions on block_events for the filters, time excluded (the caller bounds time). */
export function eventConditions(f: EventFilter, p: Params): string[] {
  const c: string[] = [];
  if (f.host !== undefined) c.push(`host = ${p.add(f.host)}`);
  if (f.cohort !== undefined) c.push(`cohort = ${p.add(f.cohort)}`);
  if (f.run !== undefined) c.push(`run_id = ${p.add(f.run)}`);
  if (f.label !== undefined && f.label.length > 0) c.push(`labels @> ${p.add(JSON.stringify(Object.fromEntries(f.label)), 'jsonb')}`);
  if (f.domain !== undefined) {
    if (f.domain.kind === 'exact') c.push(`qname = ${p.add(f.domain.name)}`);
    else {
      const [lo, hi] = suffixRange(f.domain.suffix);
      c.push(`qname_rev ~>=~ ${p.add(lo)} and qname_rev ~<~ ${p.add(hi)}`);
    }
  }
  if (f.pid !== undefined) c.push(`pid = ${p.add(f.pid, 'int4')}`);
  if (f.cmd !== undefined) {
    const pat = p.add(containsPattern(f.cmd));
    c.push(`(cmdline ilike ${pat} or comm ilike ${pat})`);
  }
  if (f.action !== undefined) c.push(`action = ${p.add(f.action)}`);
  if (f.method !== undefined) c.push(`method = ${p.add(f.method)}`);
  if (f.blocklist !== undefined) c.push(`blocklist = ${p.add(f.blocklist)}`);
  if (f.version !== undefined) c.push(`version = ${p.add(f.version, 'int4')}`);
  return c;
}

export function timeConditions(from: Date | undefined, to: Date | undefined, p: Params, column = 'time'): string[] {
  const c: string[] = [];
  if (from) c.push(`${column} >= ${p.add(from.toISOString(), 'timestamptz')}`);
  if (to) c.push(`${column} < ${p.add(to.toISOString(), 'timestamptz')}`);
  return c;
}

/** The SQL expression of an aggregate key on block_events, and on block_event_counts when the rollup has it. */
export function aggregateKey(by: string, p: Params): { raw: string; rollup: string | undefined } {
  if (by.startsWith('label:')) return { raw: `labels ->> ${p.add(by.slice(6))}`, rollup: undefined };
  switch (by) {
    case 'domain':
      return { raw: 'qname', rollup: undefined };
    case 'command':
      return { raw: 'comm', rollup: undefined };
    case 'host':
      return { raw: 'host', rollup: 'host' };
    case 'cohort':
      return { raw: 'cohort', rollup: `nullif(cohort, '')` };
    case 'action':
      return { raw: 'action', rollup: 'action' };
    case 'version':
      return { raw: `blocklist || ' v' || version`, rollup: `nullif(blocklist, '') || ' v' || version` };
    default:
      throw new Error(`unknown aggregate key ${by}`);
  }
}

const HOUR_MS = 3_600_000;

/**
 * Splits [from, to) into whole hours the rollup answers and the ragged
 * edges the raw table answers. Undefined bounds are open.
 */
export function splitHours(from: Date | undefined, to: Date | undefined, now: number): { hours?: [Date | undefined, Date]; edges: [Date | undefined, Date | undefined][] } {
  const start = from ? new Date(Math.ceil(from.getTime() / HOUR_MS) * HOUR_MS) : undefined;
  // Hours still being written to are read raw: the last whole hour before now (and before `to`).
  const endMs = Math.min(to ? to.getTime() : Infinity, now);
  const end = new Date(Math.floor(endMs / HOUR_MS) * HOUR_MS);
  if (start && start.getTime() >= end.getTime()) return { edges: [[from, to]] };
  const edges: [Date | undefined, Date | undefined][] = [];
  if (from && start && from.getTime() < start.getTime()) edges.push([from, start]);
  if (!to || end.getTime() < to.getTime()) edges.push([end, to]);
  return { hours: [start, end], edges };
}

export const SELECT_EVENT = `id, time, host, cohort, run_id, labels, pid, comm, cmdline, uid, cgroup_id, qname, qtype, entry, action, method,
  policy_version, blocklist, version, policy_hash, destination, message, cname_target, received_at, (extract(epoch from time) * 1000000)::int8::text as time_us`;

export interface EventDbRow {
  id: string;
  time: Date;
  host: string;
  cohort: string | null;
  run_id: string | null;
  labels: Record<string, string>;
  pid: number | null;
  comm: string | null;
  cmdline: string | null;
  uid: string | null;
  cgroup_id: string | null;
  qname: string | null;
  qtype: string | null;
  entry: string | null;
  action: BlockEventView['action'];
  method: BlockEventView['method'];
  policy_version: string | null;
  blocklist: string | null;
  version: number | null;
  policy_hash: string | null;
  destination: string | null;
  message: string | null;
  cname_target: string | null;
  received_at: Date;
  time_us: string;
}

/** ISO time with the microseconds PostgreSQL keeps. */
export function isoMicros(timeUs: string): string {
  const us = BigInt(timeUs);
  const ms = us / 1000n;
  const frac = (((us % 1_000_000n) + 1_000_000n) % 1_000_000n).toString().padStart(6, '0');
  return `${new Date(Number(ms)).toISOString().slice(0, 19)}.${frac}Z`;
}

export function toView(r: EventDbRow): BlockEventView {
  return {
    id: r.id,
    time: isoMicros(r.time_us),
    host: r.host,
    cohort: r.cohort,
    runId: r.run_id,
    labels: r.labels,
    pid: r.pid,
    comm: r.comm,
    cmdline: r.cmdline,
    uid: r.uid === null ? null : Number(r.uid),
    cgroupId: r.cgroup_id,
    qname: r.qname,
    qtype: r.qtype,
    entry: r.entry,
    action: r.action,
    method: r.method,
    policyVersion: r.policy_version,
    blocklist: r.blocklist,
    version: r.version,
    policyHash: r.policy_hash,
    destination: r.destination,
    message: r.message,
    cnameTarget: r.cname_target,
    receivedAt: r.received_at.toISOString(),
  };
}

export const CSV_COLUMNS: (keyof BlockEventView)[] = [
  'time', 'id', 'host', 'cohort', 'runId', 'labels', 'pid', 'comm', 'cmdline', 'uid', 'cgroupId', 'qname', 'qtype', 'entry', 'action', 'method',
  'policyVersion', 'blocklist', 'version', 'policyHash', 'destination', 'message', 'receivedAt', 'cnameTarget',
];

/** RFC 4180: quoted when needed; labels as JSON. */
export function csvLine(v: BlockEventView): string {
  return `${CSV_COLUMNS.map((k) => csvCell(v[k])).join(',')}\r\n`;
}

export function csvCell(value: unknown): string {
  if (value === null || value === undefined) return '';
  const s = typeof value === 'object' ? JSON.stringify(value) : String(value);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

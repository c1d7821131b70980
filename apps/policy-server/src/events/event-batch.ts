// One ingest batch of block events, kept as COPY text and rollup counts.
import { OccurrenceGroup, OccurrenceGrouper } from '../findings/occurrences';
import { copyLine, EVENT_COLUMNS, EventRow } from './rows';

const col = (name: (typeof EVENT_COLUMNS)[number]): number => EVENT_COLUMNS.indexOf(name);
const [HOST, COHORT, ACTION, METHOD, BLOCKLIST, VERSION] = (['host', 'cohort', 'action', 'method', 'blocklist', 'version'] as const).map(col) as [
  number, number, number, number, number, number,
];
const [LABELS, ENTRY, QNAME, RUN, CMDLINE, COMM, POLICY_VERSION] = (['labels', 'entry', 'qname', 'run_id', 'cmdline', 'comm', 'policy_version'] as const).map(col) as [
  number, number, number, number, number, number, number,
];

/** Adds a row of block_events to a finding grouper. */
export function addOccurrence(g: OccurrenceGrouper, row: EventRow, ms: number, labels?: Record<string, string>): void {
  g.add({
    ms, labels: labels ?? (row[LABELS] as string | null), entry: row[ENTRY] as string | null, action: row[ACTION] as string, qname: row[QNAME] as string | null,
    host: row[HOST] as string, cohort: row[COHORT] as string | null, runId: row[RUN] as string | null, cmdline: row[CMDLINE] as string | null,
    comm: row[COMM] as string | null, policyVersion: row[POLICY_VERSION] as string | null,
  });
}
const HOUR_MS = 3_600_000;
const LINES_PER_CHUNK = 256;

/** One row of the hourly rollup: (hour, host, cohort, action, method, blocklist, version) and its count. */
export interface RollupCount {
  key: [number, string, string, string, string, string, number];
  n: number;
}

/** Counts events into hourly rollup rows (the grouping of block_event_counts, NULLs as '' and 0). */
export class RollupCounter {
  private readonly counts = new Map<string, RollupCount>();

  add(ms: number, host: string, cohort: string | null, action: string, method: string, blocklist: string | null, version: number | null): void {
    const hour = Math.floor(ms / HOUR_MS) * HOUR_MS;
    const c0 = cohort ?? '';
    const b0 = blocklist ?? '';
    const v0 = version ?? 0;
    const k = `${hour}\u0001${host}\u0001${c0}\u0001${action}\u0001${method}\u0001${b0}\u0001${v0}`;
    const c = this.counts.get(k);
    if (c) c.n++;
    else this.counts.set(k, { key: [hour, host, c0, action, method, b0, v0], n: 1 });
  }

  values(): RollupCount[] {
    return [...this.counts.values()];
  }
}

/** A batch of block events ready to be written (plain data: it crosses from the decode thread). */
export interface PreparedEvents {
  /** Block events in it. */
  size: number;
  /** Their COPY text, in chunks. */
  chunks: Uint8Array[];
  /** The hourly rollup rows they add up to (the hours also say which days they fall on). */
  counts: RollupCount[];
  /** The rows, for the multi-row INSERT path only (empty otherwise). */
  rows: EventRow[];
  /** The run label findings are owned by, or null when findings are off. */
  ownerKey: string | null;
  /** Finding occurrences: one per (owner, entry) with blocked or audited events. */
  findings: OccurrenceGroup[];
}

/**
 * The block events of one batch, each turned into its COPY line and counted
 * into the hourly rollup as it is added, so the decoded objects die young
 * and only the COPY text (as Buffers, off the heap) is held until the batch
 * is written. The rows themselves are kept only for the multi-row INSERT
 * path, which needs them as parameters.
 */
export class EventBatch {
  private count = 0;
  private text = '';
  private readonly done: Buffer[] = [];
  private readonly rows: EventRow[] = [];
  private readonly counts = new RollupCounter();
  private readonly findings: OccurrenceGrouper | undefined;

  constructor(
    private readonly keepRows = false,
    private readonly ownerKey: string | null = null,
  ) {
    if (ownerKey !== null) this.findings = new OccurrenceGrouper(ownerKey);
  }

  static of(rows: readonly EventRow[], keepRows = false, ownerKey: string | null = null): PreparedEvents {
    const b = new EventBatch(keepRows, ownerKey);
    for (const r of rows) b.add(r, Date.parse(r[0] as string));
    return b.finish();
  }

  /** The batch, ready to be written. */
  finish(): PreparedEvents {
    if (this.text !== '') {
      this.done.push(Buffer.from(this.text));
      this.text = '';
    }
    return { size: this.count, chunks: this.done, counts: this.counts.values(), rows: this.rows, ownerKey: this.ownerKey, findings: this.findings?.values() ?? [] };
  }

  /** Adds an event; ms is its time (the row's first column) in epoch ms. */
  add(row: EventRow, ms: number, labels?: Record<string, string>): void {
    // Lines are gathered into a string and turned into a Buffer every few
    // hundred: one flat object off the heap instead of many small strings.
    this.text += copyLine(row);
    if (++this.count % LINES_PER_CHUNK === 0) {
      this.done.push(Buffer.from(this.text));
      this.text = '';
    }
    if (this.keepRows) this.rows.push(row);
    this.counts.add(
      ms, row[HOST] as string, row[COHORT] as string | null, row[ACTION] as string, row[METHOD] as string,
      row[BLOCKLIST] as string | null, row[VERSION] as number | null,
    );
    if (this.findings) addOccurrence(this.findings, row, ms, labels);
  }
}

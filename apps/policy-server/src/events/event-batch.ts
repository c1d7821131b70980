// One ingest batch of block events, kept as COPY lines and rollup counts.
import { copyLine, EVENT_COLUMNS, EventRow } from './rows';

const col = (name: (typeof EVENT_COLUMNS)[number]): number => EVENT_COLUMNS.indexOf(name);
const [HOST, COHORT, ACTION, METHOD, BLOCKLIST, VERSION] = (['host', 'cohort', 'action', 'method', 'blocklist', 'version'] as const).map(col) as [
  number, number, number, number, number, number,
];
const HOUR_MS = 3_600_000;
const LINES_PER_CHUNK = 256;

/** One row of the hourly rollup: (hour, host, cohort, action, method, blocklist, version) and its count. */
export interface RollupCount {
  key: [number, string, string, string, string, string, number];
  n: number;
}

/**
 * The block events of one batch, each turned into its COPY line and counted
 * into the hourly rollup as it is added. Ingestion adds events as they
 * arrive, so the decoded objects die young and only the COPY text is held
 * until the batch is written — what the garbage collector has to copy
 * stays small. The rows themselves are kept only for the multi-row INSERT
 * path, which needs them as parameters.
 */
export class EventBatch {
  private count = 0;
  private text = '';
  private readonly done: Buffer[] = [];
  readonly rows: EventRow[] = [];
  readonly times: number[] = [];
  readonly counts = new Map<string, RollupCount>();

  constructor(private readonly keepRows = false) {}

  static of(rows: readonly EventRow[], keepRows = false): EventBatch {
    const b = new EventBatch(keepRows);
    for (const r of rows) b.add(r, Date.parse(r[0] as string));
    return b;
  }

  get size(): number {
    return this.count;
  }

  /** The COPY text of the batch, in chunks of a few hundred lines. */
  chunks(): Buffer[] {
    if (this.text !== '') {
      this.done.push(Buffer.from(this.text));
      this.text = '';
    }
    return this.done;
  }

  /** Adds an event; ms is its time (the row's first column) in epoch ms. */
  add(row: EventRow, ms: number): void {
    // Lines are gathered into a string and turned into a Buffer every few
    // hundred: one flat object off the heap instead of many small strings.
    this.text += copyLine(row);
    if (++this.count % LINES_PER_CHUNK === 0) {
      this.done.push(Buffer.from(this.text));
      this.text = '';
    }
    if (this.keepRows) this.rows.push(row);
    this.times.push(ms);
    const hour = Math.floor(ms / HOUR_MS) * HOUR_MS;
    const host = row[HOST] as string;
    const cohort = (row[COHORT] as string | null) ?? '';
    const action = row[ACTION] as string;
    const method = row[METHOD] as string;
    const blocklist = (row[BLOCKLIST] as string | null) ?? '';
    const version = (row[VERSION] as number | null) ?? 0;
    const k = `${hour}\u0001${host}\u0001${cohort}\u0001${action}\u0001${method}\u0001${blocklist}\u0001${version}`;
    const c = this.counts.get(k);
    if (c) c.n++;
    else this.counts.set(k, { key: [hour, host, cohort, action, method, blocklist, version], n: 1 });
  }
}

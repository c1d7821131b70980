import type { Logger } from 'pino';
import type { JournalRecord } from './journal-record';

const BARE = /^[A-Za-z0-9._:/*@+,=[\]-]+$/;

/** key=value with the value quoted (JSON string escapes) when it holds anything but plain characters. */
function kv(key: string, value: string | number | null, alwaysQuote = false): string {
  if (value === null) return `${key}=-`;
  const text = String(value);
  return `${key}=${!alwaysQuote && text !== '' && BARE.test(text) ? text : JSON.stringify(text)}`;
}

function formatLabels(labels: Readonly<Record<string, string>>): string | null {
  const keys = Object.keys(labels).sort();
  return keys.length === 0 ? null : keys.map((k) => `${k}=${labels[k]}`).join(',');
}

function headline(r: JournalRecord): string {
  if (r.action === 'alert') return 'ALERT';
  const layer = r.method === 'dns' ? 'DNS' : 'IP';
  return r.action === 'blocked' ? `${layer} BLOCKED` : `${layer} AUDIT would-block`;
}

/**
 * The one-line, human-readable account of a block, for operators reading the
 * agent's log (in the spirit of GitHub's
 * `WARN DNS BLOCKED … domain=github.com. pid=266767 cmd="curl github.com "`):
 *
 *     DNS BLOCKED domain=github.com qtype=A entry=github.com pid=4242 comm=curl
 *       cmd="curl https://github.com" uid=0 run=… labels=app=web policy=v3 event=…
 *
 * (one line). Unknown values print as '-'; values with spaces or quotes are
 * JSON-quoted; cmd is always quoted.
 */
export function formatBlockLine(r: JournalRecord): string {
  const parts = [headline(r)];
  if (r.action === 'alert') parts.push(kv('message', r.message, true));
  if (r.method === 'dns' && r.qname !== null) parts.push(kv('domain', r.qname), kv('qtype', r.qtype));
  if (r.method === 'ip' || r.destination !== null) parts.push(kv('dst', r.destination));
  if (r.entry !== null) parts.push(kv('entry', r.entry));
  if (r.cnameTarget !== null && r.cnameTarget !== undefined) parts.push(kv('via', r.cnameTarget));
  parts.push(kv('pid', r.pid), kv('comm', r.comm), kv('cmd', r.cmdline, true), kv('uid', r.uid));
  parts.push(kv('run', r.runId), kv('labels', formatLabels(r.labels)));
  parts.push(kv('policy', r.policyVersion), kv('event', r.id));
  return parts.join(' ');
}

export interface BlockLogOptions {
  /** Lines one run may write per window; the rest are counted and summed up in one line. Default 20. */
  readonly linesPerWindow?: number;
  /** Length of a window. Default 1000 ms. */
  readonly windowMs?: number;
  /** Runs tracked at once; past it, the runs not yet seen share one allowance. Default 1024. */
  readonly maxTrackedRuns?: number;
  readonly clock?: () => number;
}

interface RunWindow {
  start: number;
  written: number;
  suppressed: number;
}

/** Key of the records that belong to no run, and of the runs past maxTrackedRuns. */
const SHARED = '*';

/**
 * Writes the human line of each journal record through pino: blocks at warn,
 * audits at info, alerts at error. Rate-limited per run: at most
 * `linesPerWindow` lines per run per window (the journal keeps every record);
 * a line `BLOCK LOG suppressed=N run=…` says how many were held back, at the
 * end of the window (a timer) or when the run writes again. Alerts are never
 * held back. Memory: one small window per run, at most `maxTrackedRuns`.
 */
export class BlockLog {
  private readonly linesPerWindow: number;
  private readonly windowMs: number;
  private readonly maxTrackedRuns: number;
  private readonly clock: () => number;
  private readonly windows = new Map<string, RunWindow>();
  private suppressedTotal = 0;
  private flushTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly logger: Logger,
    options: BlockLogOptions = {},
  ) {
    this.linesPerWindow = options.linesPerWindow ?? 20;
    this.windowMs = options.windowMs ?? 1000;
    this.maxTrackedRuns = options.maxTrackedRuns ?? 1024;
    this.clock = options.clock ?? Date.now;
  }

  /** Lines held back since the log was made (a counter). */
  get suppressed(): number {
    return this.suppressedTotal;
  }

  write(record: JournalRecord): void {
    if (record.action !== 'alert' && !this.admit(record.runId)) return;
    const line = formatBlockLine(record);
    const fields = { eventId: record.id, runId: record.runId };
    if (record.action === 'blocked') this.logger.warn(fields, line);
    else if (record.action === 'audited') this.logger.info(fields, line);
    else this.logger.error(fields, line);
  }

  /** Reports what is pending and stops the timer. */
  close(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    this.flush();
  }

  /** Writes the pending "suppressed" lines of every run and forgets the runs whose window has passed. */
  flush(): void {
    const now = this.clock();
    for (const [key, w] of this.windows) {
      this.report(key, w);
      if (now - w.start >= this.windowMs) this.windows.delete(key);
    }
  }

  private admit(runId: string | null): boolean {
    const now = this.clock();
    let key = runId ?? SHARED;
    let w = this.windows.get(key);
    if (!w) {
      if (this.windows.size >= this.maxTrackedRuns) this.expire(now);
      if (this.windows.size >= this.maxTrackedRuns) key = SHARED;
      w = this.windows.get(key);
      if (!w) {
        w = { start: now, written: 0, suppressed: 0 };
        this.windows.set(key, w);
      }
    }
    if (now - w.start >= this.windowMs) {
      this.report(key, w);
      w.start = now;
      w.written = 0;
    }
    if (w.written < this.linesPerWindow) {
      w.written++;
      return true;
    }
    w.suppressed++;
    this.suppressedTotal++;
    // Say how many were held back even if the run writes nothing more.
    if (!this.flushTimer) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = undefined;
        this.flush();
      }, this.windowMs);
      this.flushTimer.unref();
    }
    return false;
  }

  private expire(now: number): void {
    for (const [key, w] of this.windows) {
      if (now - w.start < this.windowMs) continue;
      this.report(key, w);
      this.windows.delete(key);
    }
  }

  private report(key: string, w: RunWindow): void {
    if (w.suppressed === 0) return;
    const runId = key === SHARED ? null : key;
    this.logger.warn(
      { runId, suppressed: w.suppressed },
      `BLOCK LOG suppressed=${w.suppressed} run=${runId ?? '-'} (more than ${this.linesPerWindow} lines in ${this.windowMs} ms; the journal has every event)`,
    );
    w.suppressed = 0;
  }
}

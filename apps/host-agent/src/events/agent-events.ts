import type { Logger } from 'pino';
import type { DnsQueryNotice } from '../dns/dns-events';
import type { JournalRecord, RunLookup } from '../journal/journal-record';
import { DomainTally } from '../runs/domain-tally';
import type { ReapResult, RunRecord } from '../runs/run-registry';
import { EventShipper, type EventShipperOptions, type ShipperStatus } from './event-shipper';
import { buildRunSummary } from './run-summary';

/** A proxy that reports every query (DnsProxy does; a ProxyPool may not). */
interface QuerySource {
  onQuery?(listener: (n: DnsQueryNotice) => void): () => void;
  /** Reports queries it has seen but not reported yet (the UDP core's notices), so a run's summary has them all. */
  flushQueries?(): void;
}

export interface AgentEventsOptions extends Omit<EventShipperOptions, 'alert'> {
  readonly cohort: string | null;
  /** Distinct names kept per run in its summary. Default 10,000. */
  readonly maxNamesPerRun?: number;
}

/**
 * The agent's side of the central history, in fleet mode: every journal
 * record and every run summary goes through the EventShipper (disk spool,
 * JetStream). Keeps the per-run domain tally the summaries list. The Agent
 * calls it at a handful of points (record, run end, reap, status).
 */
export class AgentEvents {
  readonly shipper: EventShipper;
  readonly tally: DomainTally;
  private readonly log: Logger;
  private alertSink: ((message: string) => void) | undefined;
  private source: QuerySource | undefined;

  constructor(private readonly opts: AgentEventsOptions) {
    this.log = opts.logger;
    this.shipper = new EventShipper({ ...opts, alert: (m) => this.alertSink?.(m) });
    this.tally = new DomainTally(opts.maxNamesPerRun);
  }

  /** Starts shipping; `alert` journals spool drops; the proxy's queries feed the domain tally. */
  start(wiring: { alert: (message: string) => void; proxy: unknown; runs: RunLookup }): void {
    this.alertSink = wiring.alert;
    const source = wiring.proxy as QuerySource;
    this.source = source;
    if (typeof source.onQuery === 'function') {
      source.onQuery((n) => this.query(n, wiring.runs));
    } else {
      this.log.warn('the DNS proxy does not report queries: run summaries will list no domains');
    }
    this.shipper.start();
  }

  /** A journal record, as written to events.jsonl. */
  record(r: JournalRecord): void {
    // A chain block is decided on the answer, after the query was tallied as allowed.
    if (r.method === 'dns' && r.cnameTarget !== null && r.runId !== null && r.qname !== null && r.action !== 'alert') this.tally.chainBlocked(r.runId, r.qname);
    this.shipper.event(r);
  }

  query(n: DnsQueryNotice, runs: RunLookup): void {
    if (!n.process) return;
    const run = runs.byCgroupId(n.process.cgroupId);
    if (run) this.tally.record(run.runId, n.qname, n.decision);
  }

  /** A run ended (`cgfence run` reported its exit, or it was found abandoned): its summary is shipped. */
  runEnded(run: RunRecord, signal: string | null, policyVersion: string | null): void {
    if (typeof this.source?.flushQueries === 'function') this.source.flushQueries();
    this.shipper.runSummary(
      buildRunSummary(run, { host: this.opts.hostId, cohort: this.opts.cohort, signal, domains: this.tally.seen(run.runId), policyVersion, endedAt: new Date() }),
    );
    this.tally.forget(run.runId);
  }

  /** After a reap: summaries of abandoned runs; names counted after the end of removed runs go. */
  reaped(result: ReapResult, policyVersion: string | null): void {
    for (const run of result.abandoned) this.runEnded(run, null, policyVersion);
    for (const runId of result.removed) this.tally.forget(runId);
  }

  status(): ShipperStatus {
    return this.shipper.status();
  }

  /** What the heartbeat report carries. */
  report(): { pending: number; dropped: number } {
    const s = this.shipper.spool.stats();
    return { pending: s.pending, dropped: s.dropped };
  }

  wake(): void {
    this.shipper.wake();
  }

  close(): Promise<void> {
    return this.shipper.close();
  }
}

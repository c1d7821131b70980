import type { QueryDecision } from '../dns/dns-events';

export interface DomainCount {
  readonly name: string;
  readonly queries: number;
  /** Queries of this name that were blocked (enforce) or would have been (audit). */
  readonly blocked: number;
}

/** A name with its first and last query time (ISO 8601), as a run summary lists it. */
export interface DomainSeen extends DomainCount {
  readonly firstSeen: string;
  readonly lastSeen: string;
}

interface Tally {
  queries: number;
  blocked: number;
  /** Epoch milliseconds. */
  firstSeen: number;
  lastSeen: number;
}

/**
 * The "domains contacted" list of each run: every name its processes asked
 * the proxy for, with how often, blocked or not. Bounded per run: past
 * `maxNamesPerRun` distinct names, new names are counted in `overflow` only.
 */
export class DomainTally {
  private readonly runs = new Map<string, { names: Map<string, Tally>; overflow: number }>();

  constructor(private readonly maxNamesPerRun = 10_000) {}

  record(runId: string, qname: string, decision: QueryDecision, at: Date = new Date()): void {
    const tally = this.tallyOf(runId, qname, at.getTime(), true);
    if (!tally) return;
    tally.queries++;
    if (decision !== 'allowed') tally.blocked++;
  }

  /**
   * A query counted as allowed when it arrived whose answer was then blocked
   * (or audited) because its CNAME/DNAME chain led to a listed name: the name
   * counts as blocked, not contacted.
   */
  chainBlocked(runId: string, qname: string, at: Date = new Date()): void {
    const tally = this.tallyOf(runId, qname, at.getTime(), false);
    if (tally) tally.blocked = Math.min(tally.blocked + 1, Math.max(tally.queries, 1));
  }

  private tallyOf(runId: string, qname: string, ms: number, counts: boolean): Tally | undefined {
    let run = this.runs.get(runId);
    if (!run) {
      run = { names: new Map(), overflow: 0 };
      this.runs.set(runId, run);
    }
    let tally = run.names.get(qname);
    if (!tally) {
      if (run.names.size >= this.maxNamesPerRun) {
        if (counts) run.overflow++;
        return undefined;
      }
      tally = { queries: 0, blocked: 0, firstSeen: ms, lastSeen: ms };
      run.names.set(qname, tally);
    }
    if (ms < tally.firstSeen) tally.firstSeen = ms;
    if (ms > tally.lastSeen) tally.lastSeen = ms;
    return tally;
  }

  /** The run's names, most queried first (then by name). */
  snapshot(runId: string): { names: DomainCount[]; overflow: number } {
    const run = this.runs.get(runId);
    if (!run) return { names: [], overflow: 0 };
    const names = [...run.names].map(([name, t]) => ({ name, queries: t.queries, blocked: t.blocked }));
    names.sort((a, b) => b.queries - a.queries || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { names, overflow: run.overflow };
  }

  /** The run's names with first and last query times, in snapshot() order (what a run summary carries). */
  seen(runId: string): { names: DomainSeen[]; overflow: number } {
    const run = this.runs.get(runId);
    if (!run) return { names: [], overflow: 0 };
    const { names, overflow } = this.snapshot(runId);
    return {
      names: names.map((n) => {
        const t = run.names.get(n.name)!;
        return { ...n, firstSeen: new Date(t.firstSeen).toISOString(), lastSeen: new Date(t.lastSeen).toISOString() };
      }),
      overflow,
    };
  }

  /** Runs with names counted (those not forgotten yet). */
  runIds(): string[] {
    return [...this.runs.keys()];
  }

  forget(runId: string): void {
    this.runs.delete(runId);
  }
}

import type { QueryDecision } from '../dns/dns-events';

export interface DomainCount {
  readonly name: string;
  readonly queries: number;
  /** Queries of this name that were blocked (enforce) or would have been (audit). */
  readonly blocked: number;
}

interface Tally {
  queries: number;
  blocked: number;
}

/**
 * The "domains contacted" list of each run: every name its processes asked
 * the proxy for, with how often, blocked or not. Bounded per run: past
 * `maxNamesPerRun` distinct names, new names are counted in `overflow` only.
 */
export class DomainTally {
  private readonly runs = new Map<string, { names: Map<string, Tally>; overflow: number }>();

  constructor(private readonly maxNamesPerRun = 10_000) {}

  record(runId: string, qname: string, decision: QueryDecision): void {
    let run = this.runs.get(runId);
    if (!run) {
      run = { names: new Map(), overflow: 0 };
      this.runs.set(runId, run);
    }
    let tally = run.names.get(qname);
    if (!tally) {
      if (run.names.size >= this.maxNamesPerRun) {
        run.overflow++;
        return;
      }
      tally = { queries: 0, blocked: 0 };
      run.names.set(qname, tally);
    }
    tally.queries++;
    if (decision !== 'allowed') tally.blocked++;
  }

  /** The run's names, most queried first (then by name). */
  snapshot(runId: string): { names: DomainCount[]; overflow: number } {
    const run = this.runs.get(runId);
    if (!run) return { names: [], overflow: 0 };
    const names = [...run.names].map(([name, t]) => ({ name, queries: t.queries, blocked: t.blocked }));
    names.sort((a, b) => b.queries - a.queries || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { names, overflow: run.overflow };
  }

  forget(runId: string): void {
    this.runs.delete(runId);
  }
}

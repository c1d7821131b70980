import { performance } from 'node:perf_hooks';

export interface LoadMonitorOptions {
  /** Event-loop lag beyond which allowed queries are shed (answered SERVFAIL at once). Default 250 ms. */
  readonly maxLagMs?: number;
  /** How often the loop is sampled. Default 20 ms. */
  readonly sampleMs?: number;
}

/**
 * Tells whether the proxy's event loop is falling behind, so that queries
 * for allowed names are answered SERVFAIL at once instead of piling up
 * (listed names still get NXDOMAIN, which is always cheap).
 *
 * A timer stamps each turn it gets; when the last stamp is older than the
 * sample period plus `maxLagMs`, or the last measured lag exceeded it, the
 * loop is overloaded. Costs one clock read per query.
 */
export class LoadMonitor {
  private readonly maxLagMs: number;
  private readonly sampleMs: number;
  private lastTick = performance.now();
  private lastLag = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: LoadMonitorOptions = {}) {
    this.maxLagMs = options.maxLagMs ?? 250;
    this.sampleMs = options.sampleMs ?? 20;
  }

  start(): void {
    if (this.timer) return;
    this.lastTick = performance.now();
    this.timer = setInterval(() => {
      const now = performance.now();
      this.lastLag = Math.max(0, now - this.lastTick - this.sampleMs);
      this.lastTick = now;
    }, this.sampleMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Lag of the loop as last seen, in ms (the time since the last stamp counts when it is longer). */
  lagMs(): number {
    if (!this.timer) return 0;
    return Math.max(this.lastLag, performance.now() - this.lastTick - this.sampleMs);
  }

  overloaded(): boolean {
    return this.lagMs() > this.maxLagMs;
  }
}

// Starts and stops issue 19's design 1 (mmsg-worker.ts) from the main thread.
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { MmsgWorkerData } from './mmsg-worker';

export interface PrototypeStats {
  readonly queries: number;
  readonly blocked: number;
  readonly malformed: number;
  readonly forwarded: number;
  readonly answersScreened: number;
  readonly answersRefused: number;
  readonly [more: string]: number;
}

export class MmsgForwarder {
  private constructor(
    private readonly worker: Worker,
    readonly port: number,
  ) {}

  static async start(opts: MmsgWorkerData): Promise<MmsgForwarder> {
    const worker = new Worker(join(__dirname, 'mmsg-worker.js'), { workerData: opts });
    const port = await new Promise<number>((resolve, reject) => {
      const onExit = (code: number): void => reject(new Error(`mmsg worker exited (${code}) before listening`));
      worker.once('error', reject);
      worker.once('exit', onExit);
      worker.once('message', (m: { type: string; port?: number }) => {
        worker.off('exit', onExit);
        worker.off('error', reject);
        if (m.type === 'listening' && typeof m.port === 'number') resolve(m.port);
        else reject(new Error(`mmsg worker: unexpected message ${JSON.stringify(m)}`));
      });
    });
    return new MmsgForwarder(worker, port);
  }

  async stats(): Promise<PrototypeStats> {
    return new Promise((resolve) => {
      const on = (m: { type: string; counters?: PrototypeStats }): void => {
        if (m.type !== 'stats' || !m.counters) return;
        this.worker.off('message', on);
        resolve(m.counters);
      };
      this.worker.on('message', on);
      this.worker.postMessage({ type: 'stats' });
    });
  }

  /** Closes the worker's poll handles, sockets and arena, then waits for it to exit. */
  async close(): Promise<void> {
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.postMessage({ type: 'close' });
    await exited;
  }
}

// How the kernel knows the DNS proxy is alive: the run-time config
// (cgf_config: proxy port, modes, CGF_LIVE_SOCKET, heartbeat timeout) and the
// heartbeat (cgf_heartbeat), stamped by a thread of its own.
//
// Two signals, both must hold for "alive" (cgfence.bpf.c, dns_decision):
//   - socket: the kernel looks up the proxy's UDP socket (127.0.0.1:proxyPort)
//     itself on every port-53 connect/sendmsg. It exists exactly as long as
//     the process that bound it, whatever that process is doing, and is gone
//     the moment it dies: a dead agent is noticed at once, a busy one never.
//   - heartbeat (when heartbeatTimeoutMs > 0): stamped every intervalMs by the
//     heartbeat thread (heartbeat-worker.ts), on its own event loop, so DNS
//     work on the main thread cannot starve it. It catches what the socket
//     cannot: a process that is frozen (SIGSTOP) or told its proxy cannot
//     answer (pauseHeartbeat, e.g. every proxy worker died while the primary
//     still holds the shared socket).
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { monotonicNowNs } from './clock';
import { DataPlaneConfig, encodeConfig, validateConfig } from './codec';
import { DataPlaneError, intStep } from './errors';
import type { HeartbeatWorkerData, HeartbeatWorkerRequest } from './heartbeat-worker';
import { HEARTBEAT_VALUE_SIZE } from './layout';
import { KERNEL_ABI, libbpf } from './libbpf';
import { mapId } from './trie';

const WORKER_PATH = join(__dirname, 'heartbeat-worker.js');

/**
 * How often the heartbeat thread stamps for a timeout: eight stamps per
 * timeout (so seven in a row may come late on a loaded machine before the
 * kernel notices), at most every 250 ms, at least every 10 ms.
 */
export function heartbeatIntervalFor(timeoutMs: number): number {
  if (timeoutMs <= 0) return 250;
  return Math.min(250, Math.max(10, Math.floor(timeoutMs / 8)));
}

export class ProxyLiveness {
  private config: DataPlaneConfig;
  private thread?: Worker;
  private paused = false;
  private closed = false;

  constructor(
    private readonly configFd: number,
    private readonly heartbeatFd: number,
    config: DataPlaneConfig,
  ) {
    this.config = { ...config };
  }

  /** Writes `config` with a fresh heartbeat stamp, and stamps cgf_heartbeat too (attach, adoption). */
  static initialize(configFd: number, heartbeatFd: number, config: DataPlaneConfig): ProxyLiveness {
    const sut = new ProxyLiveness(configFd, heartbeatFd, config);
    sut.writeConfig(config, 'set config');
    sut.stamp('set config');
    return sut;
  }

  get current(): DataPlaneConfig {
    return { ...this.config };
  }

  setConfig(c: DataPlaneConfig): void {
    validateConfig(c);
    this.writeConfig(c, 'setConfig');
    this.config = { ...c };
  }

  /** Stamps "proxy alive now" from this thread (CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns). */
  heartbeat(): void {
    if (this.paused) return;
    this.stamp('heartbeat');
  }

  /**
   * Starts the heartbeat thread: it stamps every `intervalMs` until close().
   * Resolves once it has stamped the first time (rejects after 10 s if it
   * cannot start). A thread that dies later is started again. Idempotent.
   */
  async startHeartbeatThread(intervalMs = heartbeatIntervalFor(this.config.heartbeatTimeoutMs)): Promise<void> {
    if (!Number.isInteger(intervalMs) || intervalMs < 10) throw new RangeError(`heartbeat intervalMs must be an integer >= 10, got ${intervalMs}`);
    if (this.thread) return;
    this.closed = false;
    await this.spawn(intervalMs);
  }

  private spawn(intervalMs: number): Promise<void> {
    const worker = new Worker(WORKER_PATH, {
      workerData: { heartbeatMapId: mapId(this.heartbeatFd, 'startHeartbeat'), intervalMs } satisfies HeartbeatWorkerData,
    });
    this.thread = worker;
    worker.unref();
    if (this.paused) worker.postMessage({ op: 'pause' } satisfies HeartbeatWorkerRequest);
    return new Promise<void>((resolve, reject) => {
      let started = false;
      const timer = setTimeout(() => {
        if (started) return;
        void worker.terminate();
        reject(new DataPlaneError('startHeartbeat', 'the heartbeat thread did not start within 10 s'));
      }, 10_000);
      timer.unref();
      worker.once('message', () => {
        started = true;
        clearTimeout(timer);
        resolve();
      });
      worker.once('error', (err) => {
        if (!started) reject(new DataPlaneError('startHeartbeat', `heartbeat thread failed: ${err.message}`));
      });
      worker.once('exit', (code) => {
        clearTimeout(timer);
        if (!started) {
          reject(new DataPlaneError('startHeartbeat', `heartbeat thread exited (${code})`));
          return;
        }
        // Died while this DataPlane lives: start another, or the heartbeat would go stale with the proxy alive.
        if (this.thread === worker && !this.closed) {
          this.thread = undefined;
          this.spawn(intervalMs).catch(() => undefined);
        }
      });
    });
  }

  /** Stops (true) or resumes (false) stamping, from this thread and the heartbeat thread: the kernel then applies the fail mode after heartbeatTimeoutMs. */
  pauseHeartbeat(paused: boolean): void {
    if (paused === this.paused) return;
    this.paused = paused;
    this.post({ op: paused ? 'pause' : 'resume' });
    if (!paused) this.stamp('heartbeat');
  }

  get heartbeatThreadRunning(): boolean {
    return this.thread !== undefined;
  }

  /** Ends the heartbeat thread: with a timeout configured, the kernel applies the fail mode once it has gone stale. */
  close(): void {
    this.closed = true;
    this.post({ op: 'close' });
    this.thread = undefined;
  }

  private post(req: HeartbeatWorkerRequest): void {
    this.thread?.postMessage(req);
  }

  private stamp(step: string): void {
    const value = Buffer.alloc(HEARTBEAT_VALUE_SIZE);
    value.writeBigUInt64LE(monotonicNowNs());
    intStep(step, 'bpf_map_update_elem(cgf_heartbeat)', () => libbpf().bpf_map_update_elem(this.heartbeatFd, Buffer.alloc(4), value, KERNEL_ABI.BPF_ANY));
  }

  private writeConfig(c: DataPlaneConfig, step: string): void {
    // A fresh stamp in the config too: only a live agent writes it.
    intStep(step, 'bpf_map_update_elem(cgf_config)', () =>
      libbpf().bpf_map_update_elem(this.configFd, Buffer.alloc(4), encodeConfig(c, monotonicNowNs()), KERNEL_ABI.BPF_ANY),
    );
  }
}

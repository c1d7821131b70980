// Counters and events: the per-CPU counters (cgf_counters, cgf_dns_counters)
// summed over CPUs, and the ring buffer (cgf_events) drained from the Node
// event loop. Events queued while no agent ran (a dead agent's fail-open
// bypasses, the name backstop's drops) are read on the first onEvent().
import koffi from 'koffi';
import type * as Koffi from 'koffi';
import { constants } from 'node:os';
import { DataPlaneCounters, decodeEvent, KernelEvent, sumPerCpu } from './codec';
import { DataPlaneError, fail, intStep } from './errors';
import { COUNTERS, DNS_COUNTERS, RATE_COUNTERS } from './layout';
import { lastErrno, libbpf, ringBufferSampleFnType, Ptr } from './libbpf';

/**
 * Kernel events read and dispatched per event-loop turn. ring_buffer__consume
 * reads until the ring is empty, so a process hammering a blocked address on
 * another core could keep it reading forever (the loop held, the batch
 * growing without bound). Past this many the callback stops it, and the rest
 * is read on the next turn.
 */
export const KERNEL_EVENTS_PER_TURN = 1024;
/** What the sample callback returns to make ring_buffer__consume stop (libbpf bails out on a negative value). */
const STOP_CONSUMING = -constants.errno.EAGAIN;

export class KernelTelemetry {
  private drainScheduled = false;
  private listeners: ((e: KernelEvent) => void)[] = [];
  private ring?: { rb: Ptr; cb: bigint; poll: Koffi.node.PollHandle; pending: KernelEvent[] };
  private readonly cpus: number;
  private closed = false;

  constructor(private readonly fds: { counters: number; dnsCounters: number; rateCounters: number; events: number }) {
    this.cpus = libbpf().libbpf_num_possible_cpus();
  }

  /** Every counter of the three counter maps, summed over CPUs. */
  counters(): DataPlaneCounters {
    this.assertOpen();
    const out: DataPlaneCounters = {};
    const value = Buffer.alloc(8 * this.cpus);
    const key = Buffer.alloc(4);
    const read = (fd: number, map: string, names: readonly (readonly [string, string])[]): void =>
      names.forEach(([, name], idx) => {
        key.writeUInt32LE(idx);
        intStep('counters', `bpf_map_lookup_elem(${map})`, () => libbpf().bpf_map_lookup_elem(fd, key, value));
        out[name] = sumPerCpu(value, this.cpus);
      });
    read(this.fds.counters, 'cgf_counters', COUNTERS);
    read(this.fds.dnsCounters, 'cgf_dns_counters', DNS_COUNTERS);
    read(this.fds.rateCounters, 'cgf_rate_counters', RATE_COUNTERS);
    return out;
  }

  /**
   * Delivers kernel events to `cb`. The ring buffer's epoll fd is watched by
   * the Node event loop (koffi.node.poll), and ring_buffer__consume() only
   * reads what is already there, so nothing ever blocks the loop.
   */
  onEvent(cb: (e: KernelEvent) => void): void {
    this.assertOpen();
    this.listeners.push(cb);
    if (this.ring) return;
    const bpf = libbpf();
    const pending: KernelEvent[] = [];
    const cbPtr = koffi.register((_ctx: unknown, data: bigint, size: number | bigint) => {
      // Runs inside ring_buffer__consume(): copy out, dispatch afterwards.
      const e = decodeEvent(Buffer.from(new Uint8Array(koffi.view(data, Number(size))).slice()));
      if (e) pending.push(e);
      // The record is consumed either way; stopping leaves the rest for the next turn.
      return pending.length >= KERNEL_EVENTS_PER_TURN ? STOP_CONSUMING : 0;
    }, ringBufferSampleFnType());
    const rb = bpf.ring_buffer__new(this.fds.events, cbPtr, null, null);
    if (!rb) {
      const errnum = lastErrno();
      koffi.unregister(cbPtr);
      fail('onEvent', 'ring_buffer__new(cgf_events)', errnum);
    }
    const epollFd = bpf.ring_buffer__epoll_fd(rb);
    const poll = koffi.node.poll(epollFd, { readable: true }, () => this.drainEvents());
    poll.unref();
    this.ring = { rb, cb: cbPtr, poll, pending };
    this.drainEvents();
  }

  /** Stops consuming events (after a last drain). */
  close(): void {
    if (this.closed) return;
    if (this.ring) {
      this.drainEvents();
      this.ring.poll.close();
      libbpf().ring_buffer__free(this.ring.rb);
      koffi.unregister(this.ring.cb);
      this.ring = undefined;
    }
    this.listeners = [];
    this.closed = true;
  }

  private drainEvents(): void {
    const ring = this.ring;
    if (!ring) return;
    const rc = libbpf().ring_buffer__consume(ring.rb);
    const batch = ring.pending.splice(0);
    if (batch.length >= KERNEL_EVENTS_PER_TURN && !this.drainScheduled) {
      // Stopped at the cap: read on in a later turn, after other work had its go.
      this.drainScheduled = true;
      setImmediate(() => {
        this.drainScheduled = false;
        this.drainEvents();
      });
    }
    for (const e of batch) {
      for (const l of this.listeners) {
        try {
          l(e);
        } catch {
          // A listener's failure must not stop delivery to the others.
        }
      }
    }
    if (rc < 0 && Math.abs(rc) !== constants.errno.EINTR) {
      // Nothing sensible to throw into the event loop; the counter
      // ringbuf_lost and the next drain will show if events go missing.
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new DataPlaneError('use', 'this DataPlane is closed');
  }
}

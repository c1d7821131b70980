// The heartbeat thread (worker_threads) of a DataPlane: stamps CLOCK_MONOTONIC
// ns into cgf_heartbeat every `intervalMs`, on an event loop of its own, so no
// amount of work on the agent's main thread (DNS, policy parsing, a blocked
// loop) can make the heartbeat go stale while the process lives. It has its
// own libbpf binding and opens the map by id. Messages: 'pause' (stop
// stamping: the caller knows the proxy cannot answer), 'resume', 'close'.
import { parentPort, workerData } from 'node:worker_threads';
import { intStep } from './errors';
import { KERNEL_ABI, libbpf, libc } from './libbpf';
import { monotonicNowNs } from './clock';

export interface HeartbeatWorkerData {
  heartbeatMapId: number;
  intervalMs: number;
}

export type HeartbeatWorkerRequest = { op: 'pause' } | { op: 'resume' } | { op: 'close' };

const port = parentPort;
if (!port) throw new Error('heartbeat-worker.js runs as a worker thread of DataPlane');
const data = workerData as HeartbeatWorkerData;
const bpf = libbpf();
const fd = intStep('heartbeat thread', `bpf_map_get_fd_by_id(cgf_heartbeat ${data.heartbeatMapId})`, () =>
  bpf.bpf_map_get_fd_by_id(data.heartbeatMapId),
);
const key = Buffer.alloc(4);
const value = Buffer.alloc(8);
let paused = false;

function stamp(): void {
  if (paused) return;
  value.writeBigUInt64LE(monotonicNowNs());
  // A failed write is retried on the next tick; the kernel's check is what counts.
  bpf.bpf_map_update_elem(fd, key, value, KERNEL_ABI.BPF_ANY);
}

stamp();
const timer = setInterval(stamp, data.intervalMs);
port.on('message', (req: HeartbeatWorkerRequest) => {
  if (req.op === 'pause') paused = true;
  else if (req.op === 'resume') {
    paused = false;
    stamp();
  } else {
    clearInterval(timer);
    libc().close(fd);
    port.close();
  }
});
port.postMessage('started');

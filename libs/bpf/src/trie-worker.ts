// The trie builder thread (worker_threads) of a DataPlane. With its own
// libbpf binding (loaded once, when the thread starts) it
//   build:   encodes a policy's CIDR lists and creates and fills both tries,
//            answering with the encoded keys (moved, not copied) and holding
//            the trie fds;
//   commit:  (may be sent before the build is done: it is served after it)
//            marks the v4 policy's /16s in the prefilter (cgf_prefilter4;
//            marking only sets slots, so it is safe on this thread; clearing
//            is the DataPlane's, after the swap), then
//            swaps a built pair into the outer maps (v4, then v6, then the
//            name map of the backstop if the policy had names; each swap
//            waits for an RCU grace period in the kernel, which is why it
//            happens here and not on the agent's event loop) and closes them;
//   discard: closes a built pair unused;
//   close:   closes everything it holds and ends the thread.
// Messages are served one at a time, in order. Trie and map fds are
// process-wide; the outer maps are opened here by id, so this thread's fds
// stay valid whatever the main thread closes.
import { parentPort, workerData } from 'node:worker_threads';
import { AddressError } from './addr';
import { DataPlaneError, intStep } from './errors';
import { libbpf, libc } from './libbpf';
import { addLpm4Slots, emptySlotSet, slotList, writeSlots } from './prefilter';
import { buildNameMap, encodeNameKeys, NamePolicy, swapNameMap } from './name-backstop';
import { buildPolicyTries, BuiltTries, closeTries, swapTrie } from './trie';

export interface TrieWorkerData {
  /** Kernel ids of the outer maps cgf_block4 and cgf_block6. */
  outer4Id: number;
  outer6Id: number;
  /** Kernel id of cgf_prefilter4. */
  prefilter4Id: number;
  /** Kernel id of cgf_names (the name backstop's outer map). */
  namesId: number;
}

export type TrieWorkerRequest =
  | { op: 'build'; id: number; v4: readonly string[]; v6: readonly string[]; names?: NamePolicy }
  | { op: 'commit'; id: number }
  | { op: 'discard'; id: number }
  | { op: 'close' };

export interface SerializedError {
  name: string;
  message: string;
  stack?: string;
  step?: string;
  errno?: number;
  input?: string;
}

export interface WireKeys {
  buf: ArrayBuffer;
  offset: number;
  length: number;
  count: number;
}

export type TrieWorkerResponse =
  | { op: 'built'; id: number; ok: true; keys4: WireKeys; keys6: WireKeys; names?: number; namesMs?: number; ms: number }
  | { op: 'committed'; id: number; ok: true; swapped4: boolean; swapped6: boolean; swappedNames: boolean; ms: number }
  | { op: 'built' | 'committed'; id: number; ok: false; error: SerializedError; swapped4?: boolean };

function serialize(err: unknown): SerializedError {
  if (err instanceof DataPlaneError) return { name: err.name, message: err.message, stack: err.stack, step: err.step, errno: err.errno };
  if (err instanceof AddressError) return { name: err.name, message: err.message, stack: err.stack, input: err.input };
  const e = err instanceof Error ? err : new Error(String(err));
  return { name: e.name, message: e.message, stack: e.stack };
}

const port = parentPort;
if (!port) throw new Error('trie-worker.js runs as a worker thread of DataPlane');
const data = workerData as TrieWorkerData;
const bpf = libbpf();
const outer4 = intStep('trie builder', `bpf_map_get_fd_by_id(cgf_block4 ${data.outer4Id})`, () => bpf.bpf_map_get_fd_by_id(data.outer4Id));
const outer6 = intStep('trie builder', `bpf_map_get_fd_by_id(cgf_block6 ${data.outer6Id})`, () => bpf.bpf_map_get_fd_by_id(data.outer6Id));
const prefilter4 = intStep('trie builder', `bpf_map_get_fd_by_id(cgf_prefilter4 ${data.prefilter4Id})`, () =>
  bpf.bpf_map_get_fd_by_id(data.prefilter4Id),
);
const namesOuter = intStep('trie builder', `bpf_map_get_fd_by_id(cgf_names ${data.namesId})`, () => bpf.bpf_map_get_fd_by_id(data.namesId));
/** A built name map of the backstop: its fd and how many distinct names it holds. */
interface BuiltNames {
  fd: number;
  count: number;
}
/** Built tries (and name map), and the prefilter slots their v4 keys need (computed before the keys move to the main thread). */
const held = new Map<number, BuiltTries & { slots4: Uint32Array; names?: BuiltNames }>();

function closeHeld(built: BuiltTries & { names?: BuiltNames }): void {
  closeTries(built);
  if (built.names) libc().close(built.names.fd);
}
/** Builds that failed, until their commit or discard: a commit answers with the build's error. */
const failed = new Map<number, SerializedError>();

function wire(k: { keys: Buffer; count: number }, transfer: ArrayBuffer[]): WireKeys {
  // Encoded keys own their ArrayBuffer (Buffer.alloc never pools): move it.
  const buf = k.keys.buffer as ArrayBuffer;
  if (buf.byteLength > 0 && !transfer.includes(buf)) transfer.push(buf);
  return { buf, offset: k.keys.byteOffset, length: k.keys.byteLength, count: k.count };
}

function buildNames(p: NamePolicy): BuiltNames {
  const k = encodeNameKeys(p);
  return { fd: buildNameMap(k), count: k.count };
}

function build(id: number, v4: readonly string[], v6: readonly string[], namePolicy: NamePolicy | undefined): void {
  const t0 = performance.now();
  const transfer: ArrayBuffer[] = [];
  let res: TrieWorkerResponse;
  try {
    const built = buildPolicyTries({ v4, v6 });
    let builtNames: BuiltNames | undefined;
    const tNames = performance.now();
    try {
      builtNames = namePolicy ? buildNames(namePolicy) : undefined;
    } catch (err) {
      closeTries(built);
      throw err;
    }
    const namesMs = performance.now() - tNames;
    held.set(id, { ...built, slots4: slotList(addLpm4Slots(emptySlotSet(), built.keys4)), names: builtNames });
    res = {
      op: 'built',
      id,
      ok: true,
      keys4: wire(built.keys4, transfer),
      keys6: wire(built.keys6, transfer),
      names: builtNames?.count,
      namesMs: builtNames ? namesMs : undefined,
      ms: performance.now() - t0,
    };
  } catch (err) {
    res = { op: 'built', id, ok: false, error: serialize(err) };
    failed.set(id, res.error);
  }
  port!.postMessage(res, transfer);
}

function commit(id: number): void {
  const t0 = performance.now();
  const built = held.get(id);
  held.delete(id);
  let swapped4 = false;
  let res: TrieWorkerResponse;
  const buildError = failed.get(id);
  failed.delete(id);
  if (buildError) {
    port!.postMessage({ op: 'committed', id, ok: false, error: buildError, swapped4: false } satisfies TrieWorkerResponse);
    return;
  }
  try {
    if (!built) throw new DataPlaneError('applyIpPolicy', `no built policy ${id} to commit`);
    // Before the swap: the prefilter must already pass every /16 the new trie lists.
    writeSlots(prefilter4, built.slots4, 1, 'applyIpPolicy prefilter');
    swapped4 = swapTrie(outer4, 'cgf_block4', built.fd4, built.keys4.count);
    const swapped6 = swapTrie(outer6, 'cgf_block6', built.fd6, built.keys6.count);
    const swappedNames = built.names ? swapNameMap(namesOuter, built.names.fd, built.names.count) : false;
    res = { op: 'committed', id, ok: true, swapped4, swapped6, swappedNames, ms: performance.now() - t0 };
  } catch (err) {
    res = { op: 'committed', id, ok: false, error: serialize(err), swapped4 };
  } finally {
    // The outer maps hold their own references; ours are no longer needed.
    if (built) closeHeld(built);
  }
  port!.postMessage(res);
}

port.on('message', (req: TrieWorkerRequest) => {
  switch (req.op) {
    case 'build':
      return build(req.id, req.v4, req.v6, req.names);
    case 'commit':
      return commit(req.id);
    case 'discard': {
      const built = held.get(req.id);
      held.delete(req.id);
      failed.delete(req.id);
      if (built) closeHeld(built);
      return;
    }
    case 'close':
      for (const built of held.values()) closeHeld(built);
      held.clear();
      libc().close(namesOuter);
      libc().close(outer4);
      libc().close(outer6);
      libc().close(prefilter4);
      port.close();
      return;
  }
});

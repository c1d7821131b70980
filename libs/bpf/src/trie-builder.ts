// The main thread's side of a DataPlane's trie builder thread
// (trie-worker.ts): started on first use, unreferenced while idle so it never
// keeps the process alive.
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { AddressError } from './addr';
import { DataPlaneError } from './errors';
import { LpmKeys } from './ip-digest';
import type { NamePolicy } from './name-backstop';
import type { SerializedError, TrieWorkerData, TrieWorkerRequest, TrieWorkerResponse, WireKeys } from './trie-worker';

const WORKER_PATH = join(__dirname, 'trie-worker.js');

/** An error from the builder thread, rebuilt as the class the calling thread would have thrown. */
function revive(e: SerializedError): Error {
  let err: Error;
  if (e.name === 'DataPlaneError') {
    err = new DataPlaneError(e.step ?? 'applyIpPolicy', '', e.errno);
    err.message = e.message;
  } else if (e.name === 'AddressError') {
    err = new AddressError(e.input ?? '', '');
    err.message = e.message;
  } else {
    err = new Error(e.message);
    err.name = e.name;
  }
  if (e.stack) err.stack = `${err.name}: ${err.message}\n    (in the trie builder thread)\n${e.stack.split('\n').slice(1).join('\n')}`;
  return err;
}

const keysOf = (k: WireKeys): LpmKeys => ({ keys: Buffer.from(k.buf, k.offset, k.length), count: k.count });

export interface BuiltOnThread {
  id: number;
  keys4: LpmKeys;
  keys6: LpmKeys;
  /** Distinct names in the built name map; undefined when the policy carried no names (the names in force stay). */
  names?: number;
  /** Of `ms`, the time spent encoding and filling the name map. */
  namesMs?: number;
  /** Time the thread took to encode and build, ms. */
  ms: number;
}

export interface CommitOutcome {
  swapped4: boolean;
  swapped6: boolean;
  swappedNames: boolean;
  ms: number;
}

/** A failed commit: `swapped4` tells whether the v4 trie had already gone in (as with the synchronous path). */
export class CommitError extends Error {
  constructor(
    override readonly cause: Error,
    readonly swapped4: boolean,
  ) {
    super(cause.message);
  }
}

interface Pending {
  resolve: (value: never) => void;
  reject: (err: Error) => void;
  map: (res: TrieWorkerResponse & { ok: true }) => unknown;
}

export class TrieBuilderThread {
  private worker?: Worker;
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private closed = false;

  constructor(private readonly data: TrieWorkerData) {}

  /** Encodes and builds both tries on the thread; it holds them until commit() or discard(). */
  build(p: { v4: readonly string[]; v6: readonly string[]; names?: NamePolicy }): { id: number; built: Promise<BuiltOnThread> } {
    const id = this.nextId++;
    const built = this.request({ op: 'build', id, v4: p.v4, v6: p.v6, names: p.names }, `built:${id}`, (res) =>
      res.op === 'built' ? { id, keys4: keysOf(res.keys4), keys6: keysOf(res.keys6), names: res.names, namesMs: res.namesMs, ms: res.ms } : undefined,
    );
    return { id, built };
  }

  /**
   * Swaps a built pair in (v4, then v6) on the thread, as soon as its build is
   * done (it may be called before). Rejects with a CommitError, or with the
   * build's error if the build failed.
   */
  commit(id: number): Promise<CommitOutcome> {
    return this.request({ op: 'commit', id }, `committed:${id}`, (res) =>
      res.op === 'committed' ? { swapped4: res.swapped4, swapped6: res.swapped6, swappedNames: res.swappedNames, ms: res.ms } : undefined,
    );
  }

  discard(id: number): void {
    if (!this.closed) this.worker?.postMessage({ op: 'discard', id } satisfies TrieWorkerRequest);
  }

  /**
   * Ends the thread once it has served what it was sent: it closes every trie
   * it still holds, so no kernel map outlives it. Requests pending now are
   * rejected; new ones are refused.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const err = new DataPlaneError('use', 'this DataPlane is closed');
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    if (this.worker) {
      this.worker.postMessage({ op: 'close' } satisfies TrieWorkerRequest);
      this.worker.unref();
    }
  }

  private request<T>(req: TrieWorkerRequest, key: string, map: (res: TrieWorkerResponse & { ok: true }) => T | undefined): Promise<T> {
    if (this.closed) return Promise.reject(new DataPlaneError('use', 'this DataPlane is closed'));
    const worker = this.ensureWorker();
    return new Promise<T>((resolve, reject) => {
      this.pending.set(key, { resolve: resolve as (v: never) => void, reject, map });
      worker.ref();
      worker.postMessage(req);
    });
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(WORKER_PATH, { workerData: this.data });
    worker.unref();
    worker.on('message', (res: TrieWorkerResponse) => this.onResponse(res));
    const lost = (err: Error): void => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      // Whatever it held is lost with it (only at a crash: its fds stay open until the process exits).
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    worker.on('error', (err) => lost(new DataPlaneError('applyIpPolicy', `trie builder thread failed: ${err.message}`)));
    worker.on('exit', (code) => lost(new DataPlaneError('applyIpPolicy', `trie builder thread exited (${code})`)));
    this.worker = worker;
    return worker;
  }

  private onResponse(res: TrieWorkerResponse): void {
    const key = `${res.op}:${res.id}`;
    const p = this.pending.get(key);
    this.pending.delete(key);
    if (this.pending.size === 0) this.worker?.unref();
    if (!p) {
      // Closed meanwhile: the thread closes what it built when it gets 'close'.
      return;
    }
    if (res.ok) p.resolve(p.map(res) as never);
    else if (res.op === 'committed') p.reject(new CommitError(revive(res.error), res.swapped4 ?? false));
    else p.reject(revive(res.error));
  }
}

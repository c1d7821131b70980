// Decoding ingest batches on a thread of their own.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { RunSummary } from '@cgfence/proto';
import { EventBatch, PreparedEvents } from './event-batch';
import { decodeMessage } from './rows';

/** The messages of one batch, packed for the decode thread: payloads back to back, one subject each. */
export interface PackedMessages {
  data: Uint8Array<ArrayBuffer>;
  /** End offset of each payload in `data`. */
  ends: Uint32Array<ArrayBuffer>;
  subjects: string[];
}

/** A message that is not a valid event of its host, by its index in the batch. */
export interface Rejected {
  index: number;
  kind: 'malformed' | 'forged';
  reason: string;
}

export interface DecodedBatch {
  events: PreparedEvents;
  runs: RunSummary[];
  rejected: Rejected[];
}

export function packMessages(messages: readonly { subject: string; data: Uint8Array }[]): PackedMessages {
  let total = 0;
  for (const m of messages) total += m.data.length;
  const data = new Uint8Array(total);
  const ends = new Uint32Array(messages.length);
  const subjects: string[] = new Array<string>(messages.length);
  let at = 0;
  messages.forEach((m, i) => {
    data.set(m.data, at);
    at += m.data.length;
    ends[i] = at;
    subjects[i] = m.subject;
  });
  return { data, ends, subjects };
}

/** Validates and converts every message of a batch (the same code on the decode thread and inline). */
export function decodeBatch(packed: PackedMessages, keepRows: boolean, ownerKey: string | null = null): DecodedBatch {
  const batch = new EventBatch(keepRows, ownerKey);
  const runs: RunSummary[] = [];
  const rejected: Rejected[] = [];
  let start = 0;
  for (let i = 0; i < packed.subjects.length; i++) {
    const end = packed.ends[i]!;
    const d = decodeMessage(packed.subjects[i]!, packed.data.subarray(start, end));
    start = end;
    if (d.kind === 'block') batch.add(d.row, d.ms, d.labels);
    else if (d.kind === 'run') runs.push(d.run);
    else rejected.push({ index: i, kind: d.kind, reason: d.reason });
  }
  return { events: batch.finish(), runs, rejected };
}

interface Job {
  resolve: (d: DecodedBatch) => void;
  reject: (err: Error) => void;
}

const WORKER_FILE = join(__dirname, 'batch-decoder.worker.js');

/**
 * Decodes batches on one worker thread: JSON parsing, schema validation and
 * building the COPY text are most of the server's CPU per event, and on the
 * main thread they would compete with receiving and acking messages (and
 * with the API). Jobs run in order. A dead worker fails its jobs (their
 * batches are nak'ed and come back) and the next job starts a new one. Where
 * the compiled worker file is missing (running from sources), batches are
 * decoded inline.
 */
export class BatchDecoder {
  private worker: Worker | undefined;
  private readonly jobs = new Map<number, Job>();
  private nextId = 0;
  /** False where the compiled worker file is missing (running from sources): batches are decoded inline. */
  readonly threaded = existsSync(WORKER_FILE);

  /** ownerKey: group blocked and audited events into finding occurrences by this run label (null: no findings). */
  decode(messages: readonly { subject: string; data: Uint8Array }[], keepRows: boolean, ownerKey: string | null = null): Promise<DecodedBatch> {
    const packed = packMessages(messages);
    if (!this.threaded) return Promise.resolve(decodeBatch(packed, keepRows, ownerKey));
    const worker = this.worker ?? this.start();
    const id = this.nextId++;
    return new Promise<DecodedBatch>((resolve, reject) => {
      this.jobs.set(id, { resolve, reject });
      worker.postMessage({ id, packed, keepRows, ownerKey }, [packed.data.buffer, packed.ends.buffer]);
    });
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }

  private start(): Worker {
    const w = new Worker(WORKER_FILE);
    w.unref();
    w.on('message', (m: { id: number; decoded?: DecodedBatch; error?: string }) => {
      const job = this.jobs.get(m.id);
      this.jobs.delete(m.id);
      if (!job) return;
      if (m.decoded) job.resolve(m.decoded);
      else job.reject(new Error(`decoding a batch failed: ${m.error ?? 'unknown error'}`));
    });
    const fail = (err: Error): void => {
      if (this.worker === w) this.worker = undefined;
      for (const job of this.jobs.values()) job.reject(err);
      this.jobs.clear();
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(`the batch decode thread exited (${code})`)));
    this.worker = w;
    return w;
  }
}

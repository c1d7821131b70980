import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Inject, Injectable, OnModuleDestroy } from '@nestjs/common';
import { Piscina } from 'piscina';
import { DataSource } from 'typeorm';
import type { VersionView } from '@cgfence/proto';
import { DomainError } from '../common/errors';
import { SERVER_CONFIG, ServerConfig } from '../config/config';
import { Metrics } from '../metrics/metrics.service';
import * as tasks from './contents.tasks';

const WORKER_FILE = join(__dirname, 'contents.worker.js');

/** Content up to this size is encoded for agents on the event loop (about 10,000 entries: a few ms), without a trip to a thread. */
export const SMALL_TRANSFER_BYTES = 256 * 1024;

/** What a refused job tells the client: how long to wait before asking again. */
export const BUSY_RETRY_AFTER_S = 2;

/**
 * Runs the work on big blocklist contents (contents.tasks.ts: commits, diffs,
 * versions, the agents' transfer encoding, replay matching) on a pool of
 * CGFENCE_CONTENTS_THREADS worker threads (piscina), each with its own
 * PostgreSQL connection, so a 1,000,000-entry list never holds the event
 * loop. Default 2 threads: two big jobs at once leave the other cores and the
 * event loop free. One thread is kept started, so the first job (an agent's
 * first download after a restart) does not wait for a thread to load.
 *
 * The queue is capped: at most CGFENCE_CONTENTS_QUEUE jobs wait beyond the
 * running ones; one more request job (commit, diff, version, replay) is
 * refused at once with 503 server.busy and Retry-After (each waiting commit
 * holds its body, up to CGFENCE_MAX_COMMIT_BODY). The agents' transfer
 * encoding is not refused: one job per content at a time, its input a hash. With 0 threads, or where the compiled worker file
 * is missing (running from sources), the work runs inline on the event loop
 * and is never refused.
 */
@Injectable()
export class ContentsPool implements OnModuleDestroy {
  private readonly pool: Piscina | undefined;
  private readonly cap: number;
  private readonly queue: number;
  private readonly inline: tasks.TaskDb;
  /** Jobs submitted and not yet finished (running and waiting). */
  private jobs = 0;

  constructor(
    @Inject(SERVER_CONFIG) config: ServerConfig,
    db: DataSource,
    private readonly metrics: Metrics,
  ) {
    const threads = config.contentsThreads;
    this.pool =
      threads > 0 && existsSync(WORKER_FILE)
        ? new Piscina({ filename: WORKER_FILE, minThreads: 1, maxThreads: threads, idleTimeout: 30_000, workerData: { databaseUrl: config.databaseUrl } })
        : undefined;
    this.queue = config.contentsQueue;
    this.cap = threads + this.queue;
    this.inline = { query: (sql, params) => db.query(sql, params) };
  }

  commit(t: tasks.CommitTask): Promise<tasks.CommitOutcome> {
    return this.run('commit', t, tasks.commitTask);
  }

  diff(t: { blocklist: string; from: number; to: number; fromHash: string | null; toHash: string | null }): Promise<Uint8Array> {
    return this.run('diff', t, tasks.diffTask);
  }

  version(t: { view: VersionView; format: 'json' | 'text' }): Promise<Uint8Array> {
    return this.run('version', t, tasks.versionTask);
  }

  async transfer(t: { hash: string }): Promise<{ bytes: number; encoded: Uint8Array; entries: number } | undefined> {
    // The text's size without reading it (PostgreSQL keeps it in the TOAST header).
    const [row] = await this.inline.query<{ bytes: number }>(`select octet_length(canonical) as bytes from blocklist_contents where content_hash = $1`, [t.hash]);
    if (!row) return undefined;
    if (row.bytes <= SMALL_TRANSFER_BYTES) return tasks.transferTask(this.inline, t);
    // Not capped: its input is a hash, and DesiredStateService asks once per content at a time.
    return this.run('transfer', t, tasks.transferTask, false);
  }

  replayMatch(t: { hash: string | null; since: string }): Promise<[string, string][]> {
    return this.run('replayMatch', t, tasks.replayMatchTask);
  }

  async onModuleDestroy(): Promise<void> {
    await this.pool?.destroy();
  }

  private async run<A, R>(name: string, arg: A, inline: (db: tasks.TaskDb, a: A) => Promise<R>, capped = true): Promise<R> {
    if (!this.pool) return inline(this.inline, arg);
    if (capped && this.jobs >= this.cap) {
      this.metrics.contentsRefused.inc();
      throw new DomainError(
        'server.busy',
        `the server is busy with ${this.jobs} big blocklist jobs (${this.queue} may wait for a thread); try again in ${BUSY_RETRY_AFTER_S} s`,
        { retryAfterSeconds: BUSY_RETRY_AFTER_S, jobs: this.jobs },
      );
    }
    this.metrics.contentsJobs.set(++this.jobs);
    try {
      // A commit's body bytes are moved to the worker, not copied.
      const body = (arg as { body?: unknown }).body;
      const transferList = body instanceof Uint8Array && body.byteLength === body.buffer.byteLength && body.buffer instanceof ArrayBuffer ? [body.buffer] : undefined;
      return (await this.pool.run(arg, { name, transferList })) as R;
    } finally {
      this.metrics.contentsJobs.set(--this.jobs);
    }
  }
}

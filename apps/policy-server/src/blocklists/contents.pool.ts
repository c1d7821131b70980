import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Inject, Injectable, OnModuleDestroy } from '@nestjs/common';
import { Piscina } from 'piscina';
import type { VersionView } from '@cgfence/proto';
import { SERVER_CONFIG, ServerConfig } from '../config/config';
import { CommitWork, countChanges, diffJson, ParsedCommit, parseCommitJson, PreparedCommit, prepareCommit, versionJson } from './contents.work';

const WORKER_FILE = join(__dirname, 'contents.worker.js');

/**
 * Runs the heavy blocklist contents work (contents.work.ts) on a pool of
 * CONTENTS_THREADS worker threads (piscina), so a commit, diff or version of
 * a 1,000,000-entry list never holds the event loop. CGFENCE_CONTENTS_THREADS
 * threads (default 2: two big jobs at once leave the other cores and the
 * event loop free); jobs beyond them wait in piscina's queue, each bounded by
 * the commit body limit. With 0 threads, or where the compiled worker file is
 * missing (running from sources), the work runs inline.
 */
@Injectable()
export class ContentsPool implements OnModuleDestroy {
  private readonly pool: Piscina | undefined;

  constructor(@Inject(SERVER_CONFIG) config: ServerConfig) {
    const threads = config.contentsThreads;
    this.pool = threads > 0 && existsSync(WORKER_FILE) ? new Piscina({ filename: WORKER_FILE, minThreads: 0, maxThreads: threads, idleTimeout: 30_000 }) : undefined;
  }

  prepareCommit(work: CommitWork): Promise<PreparedCommit> {
    return this.run('prepareCommit', work, prepareCommit);
  }

  parseCommitJson(text: string): Promise<ParsedCommit> {
    return this.run('parseCommitJson', text, parseCommitJson);
  }

  countChanges(work: { baseText: string; canonical: string }): Promise<{ added: number; removed: number }> {
    return this.run('countChanges', work, countChanges);
  }

  diffJson(work: { blocklist: string; from: number; to: number; fromText: string; toText: string }): Promise<Uint8Array> {
    return this.run('diffJson', work, diffJson);
  }

  versionJson(work: { view: VersionView; text: string }): Promise<Uint8Array> {
    return this.run('versionJson', work, versionJson);
  }

  async onModuleDestroy(): Promise<void> {
    await this.pool?.destroy();
  }

  private run<A, R>(name: string, arg: A, inline: (a: A) => R): Promise<R> {
    if (!this.pool) return Promise.resolve(inline(arg));
    return this.pool.run(arg, { name }) as Promise<R>;
  }
}

// The worker-thread side of ContentsPool (contents.pool.ts): piscina calls
// these by name. Each thread has its own PostgreSQL connection (workerData
// carries the URL), so big contents are read and written here, never on the
// event loop's thread.
import { setPriority } from 'node:os';
import { workerData } from 'node:worker_threads';
import { Client } from 'pg';
import { move } from 'piscina';
import * as tasks from './contents.tasks';
import type { TaskDb } from './contents.tasks';

// This thread only (Linux schedules threads as tasks; pid 0 is the caller):
// on a busy machine the event loop's thread comes first, and /ready keeps
// answering while a big list is worked on.
try {
  setPriority(10);
} catch {
  /* not permitted: run at the process's priority */
}

const { databaseUrl } = workerData as { databaseUrl: string };
let client: Promise<Client> | undefined;

/** The thread's connection, made on first use and made again after it fails. */
function connection(): Promise<Client> {
  if (!client) {
    const c = new Client({ connectionString: databaseUrl, application_name: 'cgfence-policy-server-contents' });
    const forget = (): void => {
      client = undefined;
    };
    c.on('error', forget);
    c.on('end', forget);
    client = c.connect().then(
      () => c,
      (err: unknown) => {
        forget();
        throw err;
      },
    );
  }
  return client;
}

const db: TaskDb = {
  async query<T>(sql: string, params: unknown[]): Promise<T[]> {
    return (await (await connection()).query(sql, params)).rows as T[];
  },
};

/** Bytes moved (not copied) to the event loop's thread; a small Buffer (a slice of Node's shared pool) is copied. */
function bytes(b: Uint8Array): unknown {
  return b.byteLength === b.buffer.byteLength ? move(b) : new Uint8Array(b);
}

export const commit = (t: tasks.CommitTask): Promise<tasks.CommitOutcome> => tasks.commitTask(db, t);
export const diff = async (t: Parameters<typeof tasks.diffTask>[1]): Promise<unknown> => bytes(await tasks.diffTask(db, t));
export const version = async (t: Parameters<typeof tasks.versionTask>[1]): Promise<unknown> => bytes(await tasks.versionTask(db, t));
// Nested bytes cannot be moved (piscina moves only the result itself): the gzip (a fifth of the text) is copied.
export const transfer = (t: Parameters<typeof tasks.transferTask>[1]): ReturnType<typeof tasks.transferTask> => tasks.transferTask(db, t);
export const replayMatch = (t: Parameters<typeof tasks.replayMatchTask>[1]): Promise<[string, string][]> => tasks.replayMatchTask(db, t);

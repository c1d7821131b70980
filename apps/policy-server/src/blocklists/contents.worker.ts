// The worker-thread side of ContentsPool (contents.pool.ts): piscina calls
// these by name.
import { setPriority } from 'node:os';
import { move } from 'piscina';
import * as work from './contents.work';

// This thread only (Linux schedules threads as tasks; pid 0 is the caller):
// on a busy machine the event loop's thread comes first, and /ready keeps
// answering while a big list is worked on.
try {
  setPriority(10);
} catch {
  /* not permitted: run at the process's priority */
}

export const { countChanges, parseCommitJson, prepareCommit } = work;
// JSON bytes are transferred (moved), not copied.
export const diffJson = (w: Parameters<typeof work.diffJson>[0]): unknown => move(work.diffJson(w));
export const versionJson = (w: Parameters<typeof work.versionJson>[0]): unknown => move(work.versionJson(w));

// The worker-thread side of ContentsPool (contents.pool.ts): piscina calls
// these by name.
import { setPriority } from 'node:os';

// This thread only (Linux schedules threads as tasks; pid 0 is the caller):
// on a busy machine the event loop's thread comes first, and /ready keeps
// answering while a big list is worked on.
try {
  setPriority(10);
} catch {
  /* not permitted: run at the process's priority */
}

export { countChanges, diffJson, prepareCommit, versionJson } from './contents.work';

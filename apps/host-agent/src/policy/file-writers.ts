import { readdirSync, readFileSync, statSync } from 'node:fs';
import { setImmediate as nextTurn } from 'node:timers/promises';

/** A process holding a file open for writing. */
export interface FileWriter {
  readonly pid: number;
  readonly comm: string;
}

/** At most this many processes are looked at (a bound on the work of one check; a host has far fewer). */
export const MAX_PROCESSES_SCANNED = 65_536;
/**
 * Processes looked at per event-loop turn: the scan yields between batches so
 * the DNS proxy on the same loop keeps answering (about 1 ms per 16 processes
 * with their descriptors here; a host with thousands of processes takes a
 * few hundred ms in all, spread over turns).
 */
export const PROCESSES_PER_TURN = 16;

const O_ACCMODE = 0o3;
const O_RDONLY = 0;

/**
 * The processes that hold `file` open for writing (O_WRONLY or O_RDWR), from
 * /proc/PID/fd and /proc/PID/fdinfo (the agent runs as root, so it sees every
 * process). Only a file that nobody is writing to is complete: a writer that
 * truncated the file and was then descheduled (a loaded or CPU-starved host)
 * for longer than the settle time still holds it open, whatever its pace.
 * Processes and descriptors that vanish while they are looked at are skipped.
 * Yields to the event loop every PROCESSES_PER_TURN processes.
 */
export async function writersOf(file: string, self: number = process.pid): Promise<FileWriter[]> {
  let target;
  try {
    target = statSync(file);
  } catch {
    return [];
  }
  const writers: FileWriter[] = [];
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return [];
  }
  let n = 0;
  for (const p of pids.slice(0, MAX_PROCESSES_SCANNED)) {
    if (++n % PROCESSES_PER_TURN === 0) await nextTurn();
    const pid = Number(p);
    if (pid === self) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${p}/fd`);
    } catch {
      continue; // gone, or a kernel thread
    }
    for (const fd of fds) {
      let st;
      try {
        st = statSync(`/proc/${p}/fd/${fd}`);
      } catch {
        continue; // closed since
      }
      if (st.ino !== target.ino || st.dev !== target.dev) continue;
      let flags: number;
      try {
        const m = /^flags:\s+([0-7]+)/m.exec(readFileSync(`/proc/${p}/fdinfo/${fd}`, 'utf8'));
        if (!m) continue;
        flags = parseInt(m[1], 8);
      } catch {
        continue;
      }
      if ((flags & O_ACCMODE) === O_RDONLY) continue;
      let comm = '?';
      try {
        comm = readFileSync(`/proc/${p}/comm`, 'utf8').trim();
      } catch {
        // gone since
      }
      writers.push({ pid, comm });
      break;
    }
  }
  return writers;
}

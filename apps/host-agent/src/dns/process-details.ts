import { closeSync, openSync, readFileSync, readSync } from 'node:fs';

/**
 * What the kernel's attribution map tells about the process that sent a DNS
 * query. Structurally the same as libs/bpf's ProcessInfo, so the real
 * DataPlane can be passed where an Attribution is expected. `uid` may be
 * negative (or absent) when the kernel side did not record it.
 */
export interface AttributedProcess {
  readonly pid: number;
  readonly tgid: number;
  readonly uid?: number;
  readonly comm: string;
  readonly cgroupId: bigint;
}

/** Looks up who sent the query with this client port and DNS id (libs/bpf: DataPlane.lookupDnsOrigin). */
export interface Attribution {
  lookup(clientPort: number, dnsId: number): AttributedProcess | undefined;
}

/** The process as it appears in an event: what the kernel said plus what /proc still showed. */
export interface ProcessDetails {
  readonly pid: number;
  readonly tgid: number;
  readonly comm: string;
  /** argv joined with spaces; null when the process was gone before it could be read. */
  readonly cmdline: string | null;
  readonly uid: number | null;
  readonly cgroupId: bigint;
}

/** Reads what /proc knows about a process. Injected so tests and other platforms can replace it. */
export interface ProcessReader {
  cmdline(pid: number): string | null;
  uid(pid: number): number | null;
  comm(pid: number): string | null;
}

/**
 * Longest command line an event carries, in bytes of UTF-8: a deploy can
 * start a process with megabytes of arguments, and every blocked query of it
 * would otherwise copy them into the journal, the block log and the spool.
 */
export const MAX_CMDLINE_BYTES = 4096;
/** Appended to a command line that was cut at MAX_CMDLINE_BYTES. */
export const CMDLINE_CUT_MARKER = ' …[cut]';

/** A command line within MAX_CMDLINE_BYTES (marker included), cut on a character boundary and marked when it was longer. */
export function capCmdline(cmdline: string | null): string | null {
  if (cmdline === null || Buffer.byteLength(cmdline, 'utf8') <= MAX_CMDLINE_BYTES) return cmdline;
  const room = MAX_CMDLINE_BYTES - Buffer.byteLength(CMDLINE_CUT_MARKER, 'utf8');
  let cut = Buffer.from(cmdline.slice(0, room), 'utf8').subarray(0, room).toString('utf8');
  // A multi-byte character split at the cut decodes to U+FFFD: drop it.
  if (cut.endsWith('�') && !cmdline.startsWith(cut)) cut = cut.slice(0, -1);
  return cut + CMDLINE_CUT_MARKER;
}

/** Reads at most `max` bytes of a /proc file (cmdline can be megabytes). */
function readProcHead(pid: number, file: string, max: number): Buffer | null {
  if (!Number.isInteger(pid) || pid <= 0) return null;
  let fd = -1;
  try {
    fd = openSync(`/proc/${pid}/${file}`, 'r');
    const buf = Buffer.alloc(max);
    let n = 0;
    while (n < max) {
      const got = readSync(fd, buf, n, max - n, null);
      if (got === 0) break;
      n += got;
    }
    return buf.subarray(0, n);
  } catch {
    return null; // exited, or not ours to read: best effort
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

function readProc(pid: number, file: string): Buffer | null {
  if (!Number.isInteger(pid) || pid <= 0) return null;
  try {
    return readFileSync(`/proc/${pid}/${file}`);
  } catch {
    return null; // exited, or not ours to read: best effort
  }
}

/** Reads /proc synchronously, so it happens in the same tick the query arrived in. */
export const procfsReader: ProcessReader = {
  cmdline(pid) {
    // One byte past the cap tells a cut line from one that fits exactly.
    const raw = readProcHead(pid, 'cmdline', MAX_CMDLINE_BYTES + 1);
    if (raw === null || raw.length === 0) return null; // kernel threads and zombies have none
    const text = raw.toString('utf8');
    return capCmdline((text.endsWith('\0') ? text.slice(0, -1) : text).split('\0').join(' '));
  },
  uid(pid) {
    const raw = readProc(pid, 'status');
    if (raw === null) return null;
    const m = /^Uid:\s+(\d+)/m.exec(raw.toString('utf8'));
    return m ? Number(m[1]) : null;
  },
  comm(pid) {
    const raw = readProc(pid, 'comm');
    return raw === null ? null : raw.toString('utf8').replace(/\n$/, '');
  },
};

/**
 * Completes the kernel's view of a process from /proc: cmdline always (cut
 * to MAX_CMDLINE_BYTES with CMDLINE_CUT_MARKER), uid
 * when the kernel did not record it. The kernel's comm is the name of the
 * sending thread (dig sends from "isc-net-0000"); events name the process, so
 * the process's own comm wins and the thread's is the fallback for a process
 * that is already gone. Reads the thread group leader, which is what ps shows
 * as the PID.
 */
export function describeProcess(info: AttributedProcess, reader: ProcessReader): ProcessDetails {
  const procPid = info.tgid > 0 ? info.tgid : info.pid;
  const kernelUid = info.uid !== undefined && Number.isInteger(info.uid) && info.uid >= 0 ? info.uid : null;
  return {
    pid: info.pid,
    tgid: info.tgid,
    comm: reader.comm(procPid) ?? info.comm,
    cmdline: capCmdline(reader.cmdline(procPid)),
    uid: kernelUid ?? reader.uid(procPid),
    cgroupId: info.cgroupId,
  };
}

import { readFileSync } from 'node:fs';

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
    const raw = readProc(pid, 'cmdline');
    if (raw === null || raw.length === 0) return null; // kernel threads and zombies have none
    const text = raw.toString('utf8');
    return (text.endsWith('\0') ? text.slice(0, -1) : text).split('\0').join(' ');
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
 * Completes the kernel's view of a process from /proc: cmdline always, uid
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
    cmdline: reader.cmdline(procPid),
    uid: kernelUid ?? reader.uid(procPid),
    cgroupId: info.cgroupId,
  };
}

// Shared by the load end-to-end test and the flood benchmark: a resolver the
// deploy could ask directly, the agent's memory, and the flood client run as
// nobody inside a run.
import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import type { AgentUnderTest } from './agent-harness';

/** The flood/probe client (dns/testing/flood-client.ts), compiled. */
export const FLOOD_CLIENT = join(__dirname, '..', 'dns', 'testing', 'flood-client.js');
/** An unprivileged process: uid/gid 65534, no supplementary groups. */
export const NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];
/** What the original resolver answers: seeing it in a run means the kernel did not redirect (failed open). */
export const VIA_ORIGINAL = '192.0.2.77';

export interface OriginalResolver {
  readonly host: string;
  readonly queries: string[];
  close(): Promise<void>;
}

/** A resolver on port 53 of a random loopback address that answers every A query with VIA_ORIGINAL. */
export async function startOriginalResolver(): Promise<OriginalResolver> {
  const host = `127.78.${randomInt(1, 255)}.${randomInt(1, 255)}`;
  const sock = dgram.createSocket('udp4');
  const queries: string[] = [];
  sock.on('message', (msg, rinfo) => {
    try {
      const q = dnsPacket.decode(msg);
      const question = q.questions?.[0];
      if (!question) return;
      queries.push(question.name);
      const answers = question.type === 'A' ? [{ type: 'A' as const, name: question.name, ttl: 5, data: VIA_ORIGINAL }] : [];
      sock.send(dnsPacket.encode({ id: q.id, type: 'response', flags: dnsPacket.RECURSION_AVAILABLE, questions: q.questions, answers }), rinfo.port, rinfo.address);
    } catch {
      // not DNS
    }
  });
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(53, host, () => resolve());
  });
  return { host, queries, close: () => new Promise((r) => sock.close(() => r())) };
}

/** `of(pid)` summed over `pid` and its live children (a pool's workers); a process gone counts 0. */
function overTree(pid: number, of: (p: number) => number): number {
  const quiet = (p: number): number => {
    try {
      return of(p);
    } catch {
      return 0;
    }
  };
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    // gone
  }
  return quiet(pid) + children.reduce((sum, c) => sum + quiet(c), 0);
}

/** RSS of the agent and its child processes (proxy workers), from /proc. */
export function agentRss(pid: number): number {
  return overTree(pid, (p) => {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  });
}

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux). */
const USER_HZ = 100;

/** utime + stime (ms) of `pid` and of its live children (a pool's workers), from /proc. */
export function processCpuMs(pid: number): number {
  return overTree(pid, (p) => {
    const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
    // Fields after "(comm) ": state is [0], utime [11], stime [12] (fields 14 and 15 of proc(5)).
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / USER_HZ;
  });
}

/** Runs the flood client with `args` as nobody in a run of `sut`'s deploy cgroup; returns its JSON report. */
export async function floodAsNobody<T>(sut: AgentUnderTest, args: string[], extra: string[], timeoutSeconds: number): Promise<T> {
  const r = await sut.run([...NOBODY, process.execPath, FLOOD_CLIENT, ...args, ...extra], { timeoutMs: timeoutSeconds * 1000 });
  if (r.code !== 0) throw new Error(`flood client ${args[0]} exited ${r.code}: ${r.stdout}${r.stderr}`);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as T;
}

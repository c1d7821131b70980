// Where a process's CPU went, from a V8 .cpuprofile (node --cpu-prof): self
// time per package (node_modules/<pkg>, our own dist files, node internals,
// garbage collection, idle) and per function. For the benchmarks' profile
// notes; written here because no dependency of ours reads .cpuprofile files.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** The package (or our file, or a V8 pseudo-frame) a frame belongs to. */
function owner(f: ProfileNode['callFrame']): string {
  if (f.url === '') return `(${f.functionName || 'native'})`;
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(f.url);
  if (nm) return nm[1]!;
  if (f.url.startsWith('node:')) return 'node internals';
  const ours = /\/(apps|libs)\/([^/]+)\/dist\/src\/(.+)$/.exec(f.url);
  return ours ? `${ours[2]}: ${ours[3]}` : f.url;
}

export interface ProfileSummary {
  totalMs: number;
  byOwner: [string, number][];
  byFunction: [string, number][];
}

/** Sums busy self time (idle and parked worker time left out) over every .cpuprofile in `dir` (one per thread). */
export function summariseProfiles(dir: string, top = 12): ProfileSummary {
  const byOwner = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let totalMs = 0;
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
    const p = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Profile;
    const nodes = new Map(p.nodes.map((n) => [n.id, n]));
    p.samples.forEach((id, i) => {
      const ms = (p.timeDeltas[i] ?? 0) / 1000;
      const f = nodes.get(id)!.callFrame;
      // Waiting is not work: the main thread idle, and worker threads (piscina) parked for a task.
      if (f.functionName === '(idle)' || f.functionName === 'atomicsWaitLoop') return;
      totalMs += ms;
      const o = owner(f);
      byOwner.set(o, (byOwner.get(o) ?? 0) + ms);
      const fn = `${f.functionName || '(anonymous)'} ${o}${f.url ? `:${f.lineNumber + 1}` : ''}`;
      byFunction.set(fn, (byFunction.get(fn) ?? 0) + ms);
    });
  }
  const sorted = (m: Map<string, number>) => [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
  return { totalMs, byOwner: sorted(byOwner), byFunction: sorted(byFunction) };
}

// Benchmark: what the unix guard (cgroup connect_unix, libs/bpf
// unix-guard.bpf.c) adds to a unix-socket connect() from the deploy cgroup.
// Target: under 1 µs of CPU per connect().
//
// Two cgroups, each with the whole data plane attached: one with the guard
// and its default list (five paths), one with the guard off — the baseline,
// measured in the same run, so the difference is the guard alone. A small C
// loop (unix-connect-loop.c, built here with clang) does socket() +
// connect() + close() from inside each, to a path that is not listed (the
// hook reads the address, misses, the kernel answers ENOENT) and to a listed
// path (the hook refuses: EPERM; without the guard ENOENT). Rounds alternate
// the cgroups so drift in the machine's load hits both; the figures are
// medians over rounds of the loop's thread CPU time per iteration.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataPlane, ensureBpffs, findCgroup2Root } from '@cgfence/bpf';
import { median, printTable, quantile, verdict } from '@cgfence/devservices';

const ROUNDS = 11;
const ITERATIONS = 200_000;
const TARGET_NS = 1000;
const LISTED = '/var/run/nscd/socket';

interface Side {
  name: string;
  cgroup: string;
  pinDir: string;
  plane: DataPlane;
}

function loopIn(loop: string, cgroup: string, path: string): { cpu: number; wall: number; errno: number } {
  const r = spawnSync('sh', ['-c', `echo $$ > '${cgroup}/cgroup.procs' && exec "$0" "$1" "$2"`, loop, path, String(ITERATIONS)], { encoding: 'utf8' });
  const [cpu, wall, errno] = r.stdout.trim().split(' ').map(Number);
  if (r.status !== 0 || !(cpu! > 0)) throw new Error(`unix-connect-loop failed: ${r.status} ${r.stdout} ${r.stderr}`);
  return { cpu: cpu!, wall: wall!, errno: errno! };
}

function main(): void {
  const dir = mkdtempSync(join(tmpdir(), 'cgf-unix-bench-'));
  const loop = join(dir, 'unix-connect-loop');
  execFileSync('clang', ['-O2', '-Wall', '-Werror', '-o', loop, join(__dirname, '..', '..', '..', 'src', 'bench', 'unix-connect-loop.c')]);
  const root = findCgroup2Root();
  const bpffs = ensureBpffs();
  const sides: Side[] = [];
  const config = { proxyPort: 5393, mode: 'enforce' as const, failMode: 'open' as const, heartbeatTimeoutMs: 0 };
  try {
    for (const [name, paths] of [
      ['guard on (default list)', undefined],
      ['guard off (baseline)', [] as string[]],
    ] as const) {
      const id = `cgf-unix-bench-${process.pid}-${sides.length}`;
      const cgroup = join(root, id);
      mkdirSync(cgroup);
      const pinDir = join(bpffs, id);
      const plane = DataPlane.attach({ cgroupPath: cgroup, pinDir, config, unixGuard: paths ? { paths } : undefined });
      sides.push({ name, cgroup, pinDir, plane });
    }
    if (sides[0]!.plane.unixGuardStatus().state !== 'active') throw new Error(`the guard is not active: ${JSON.stringify(sides[0]!.plane.unixGuardStatus())}`);
    const unlisted = join(dir, 'not-listed.sock');
    const rows: (string | number)[][] = [];
    for (const [caseName, path] of [
      ['connect() to an unlisted path (ENOENT)', unlisted],
      [`connect() to a listed path, ${LISTED} (guard: EPERM)`, LISTED],
    ] as const) {
      const cpu: number[][] = [[], []];
      const errnos: number[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        const order = r % 2 === 0 ? [0, 1] : [1, 0];
        for (const i of order) {
          const m = loopIn(loop, sides[i]!.cgroup, path);
          cpu[i]!.push(m.cpu);
          errnos[i] = m.errno;
        }
      }
      const added = cpu[0]!.map((c, r) => c - cpu[1]![r]!);
      rows.push([
        caseName,
        median(cpu[1]!),
        median(cpu[0]!),
        median(added),
        quantile(added, 0.75) - quantile(added, 0.25),
        `${errnos[0]} / ${errnos[1]}`,
        path === unlisted ? verdict(median(added) < TARGET_NS) : '(refused: cost not a target)',
      ]);
    }
    printTable({
      title: `unix guard: CPU ns per socket()+connect()+close() from the deploy cgroup (${ITERATIONS.toLocaleString('en-US')} iterations x ${ROUNDS} rounds; target: added < ${TARGET_NS} ns)`,
      head: ['case', 'guard off (baseline) ns', 'guard on ns', 'added ns (median)', 'added IQR', 'errno on / off', 'target'],
      rows,
      notes: [
        'Both cgroups have the whole data plane attached; only the unix guard differs. Thread CPU time of the loop (waiting for a CPU is not counted).',
        'A refused connect is cheaper than ENOENT: the hook answers before the kernel looks the path up.',
      ],
    });
  } finally {
    for (const s of sides) {
      s.plane.close();
      DataPlane.teardown({ cgroupPath: s.cgroup, pinDir: s.pinDir });
      rmdirSync(s.cgroup);
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

main();

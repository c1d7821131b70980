// The DNS proxy on several processes (ProxyPool, node:cluster), with the real
// kernel for attribution: queries spread over the workers, each answers by
// the policy, block events reach the primary naming the process (read from
// the pinned attribution map in the worker), a killed worker is replaced, and
// a policy or mode change reaches every worker before setPolicy resolves.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DataPlane, ensureBpffs, findCgroup2Root } from '@cgfence/bpf';
import { protoBlocklistCodec } from '../policy/entry-types';
import { compilePolicy, type Policy } from '../policy/policy';
import type { AddressBlocker } from './address-learner';
import type { DnsPolicyEvent, DnsQueryNotice } from './dns-events';
import { ProxyPool } from './proxy-pool';
import { makeQuery, tcpQuery, udpQuery } from './testing/dns-client';
import { LoopbackUpstream, type UpstreamRecords } from './testing/loopback-upstream';

const WORKERS = 3;

function lookup(name: string): UpstreamRecords | undefined {
  if (name === 'x.learn.example') return { A: ['198.51.100.7'], ttl: 60 };
  if (name.endsWith('.example')) return { A: ['192.0.2.10'] };
  return undefined;
}

function policy(text: string, version: string): Policy {
  const r = compilePolicy(protoBlocklistCodec, text, version);
  assert.ok(r.ok, r.ok ? '' : r.message);
  return r.policy;
}

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** `count` queries for `name`, `parallel` at a time, each from its own socket (so the kernel spreads them); rcode -> how many. */
async function burst(port: number, name: string, count: number, parallel = 50): Promise<Map<string, number>> {
  const tally = new Map<string, number>();
  for (let done = 0; done < count; done += parallel) {
    const answers = await Promise.all(
      Array.from({ length: Math.min(parallel, count - done) }, () => udpQuery('127.0.0.1', port, makeQuery(name, 'A'), 3000)),
    );
    for (const a of answers) tally.set(a.answer.rcode ?? '?', (tally.get(a.answer.rcode ?? '?') ?? 0) + 1);
  }
  return tally;
}

/** Runs `dig` inside the cgroup, asking "the resolver" on port 53: the kernel redirects it to the pool. */
function digInCgroup(cgroupPath: string, name: string): Promise<{ pid: number; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', `echo $$ > '${cgroupPath}/cgroup.procs' && exec dig +time=2 +tries=1 @127.0.0.53 "$0"`, name], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('close', () => resolve({ pid: child.pid ?? -1, out }));
  });
}

describe(ProxyPool.name, () => {
  let upstream: LoopbackUpstream;
  let pool: ProxyPool;
  let plane: DataPlane;
  let cgroupPath: string;
  let pinDir: string;
  const events: DnsPolicyEvent[] = [];
  const notices: DnsQueryNotice[] = [];
  const v1 = policy('*.blocked.example\n*.learn.example !resolve\n', 'v1');
  const learned: { addrs: string[]; ttl: number }[] = [];
  const blocker: AddressBlocker = { learn: (addrs, ttl) => void learned.push({ addrs: [...addrs], ttl }) };

  before(async () => {
    upstream = await LoopbackUpstream.start(lookup);
    pool = new ProxyPool({
      workers: WORKERS,
      upstream: `127.0.0.1:${upstream.port}`,
      policy: v1,
      addressBlocker: blocker,
    });
    pool.onEvent((e) => events.push(e));
    pool.onQuery((n) => notices.push(n));
    await pool.start();
    const id = `${process.pid}-${Date.now()}`;
    cgroupPath = join(findCgroup2Root(), `cgfence-test-pool-${id}`);
    pinDir = join(ensureBpffs(), `cgfence-test-pool-${id}`);
    mkdirSync(cgroupPath);
    plane = DataPlane.attach({ cgroupPath, pinDir, config: { proxyPort: pool.port, mode: 'enforce', failMode: 'open', heartbeatTimeoutMs: 0 } });
    pool.setAttributionPinDir(pinDir);
  });

  after(async () => {
    await pool?.close();
    await upstream?.close();
    plane?.close();
    if (cgroupPath) {
      DataPlane.teardown({ cgroupPath, pinDir });
      rmdirSync(cgroupPath);
    }
  });

  it('answers a blocked name NXDOMAIN and an allowed one from upstream, whichever worker gets it, on UDP v4/v6 and TCP', async () => {
    assert.equal(pool.workerPids().length, WORKERS);
    const before = await pool.workerStats();

    assert.deepEqual([...(await burst(pool.port, 'x.blocked.example', 600))], [['NXDOMAIN', 600]]);
    assert.deepEqual([...(await burst(pool.port, 'allowed.example', 600))], [['NOERROR', 600]]);
    assert.equal((await udpQuery('::1', pool.port, makeQuery('y.blocked.example', 'A'))).answer.rcode, 'NXDOMAIN');
    assert.equal((await tcpQuery('127.0.0.1', pool.port, makeQuery('z.blocked.example', 'A'))).answer.rcode, 'NXDOMAIN', 'TCP: the primary');

    const after = await pool.workerStats();
    const handled = after.map((w) => w.stats.queries - (before.find((b) => b.pid === w.pid)?.stats.queries ?? 0));
    assert.equal(
      handled.filter((n) => n > 0).length,
      WORKERS,
      `every worker answered some of the 1,201 UDP queries: ${JSON.stringify(handled)}`,
    );
    const total = await pool.stats();
    assert.ok(total.queries >= 1202, `the pool sums its workers and the primary: ${total.queries}`);
    assert.ok(total.blocked >= 602);
  });

  it('sends block events to the primary, naming the process the kernel attributed the query to', async () => {
    const r = await digInCgroup(cgroupPath, 'attributed.blocked.example');
    assert.match(r.out, /status: NXDOMAIN/, r.out);

    await waitFor('the block event', () => events.some((e) => e.qname === 'attributed.blocked.example'));
    const e = events.find((x) => x.qname === 'attributed.blocked.example')!;
    assert.equal(e.kind, 'dns_block');
    assert.equal(e.entry, '*.blocked.example');
    assert.equal(e.transport, 'udp');
    assert.ok(e.time instanceof Date);
    assert.deepEqual(e.policy, { version: 'v1', hash: v1.hash });
    assert.ok(e.process, 'the worker read the attribution map');
    assert.equal(e.process.tgid, r.pid);
    assert.equal(e.process.comm, 'dig');
    assert.match(e.process.cmdline ?? '', /attributed\.blocked\.example/);
    assert.equal(typeof e.process.cgroupId, 'bigint');
    assert.ok(e.process.cgroupId > 0n);

    const allowed = await digInCgroup(cgroupPath, 'seen.example');
    assert.match(allowed.out, /status: NOERROR/, allowed.out);
    await waitFor('the query notice', () => notices.some((n) => n.qname === 'seen.example'));
    const n = notices.find((x) => x.qname === 'seen.example')!;
    assert.equal(n.decision, 'allowed');
    assert.equal(n.process?.tgid, allowed.pid);
    assert.ok(
      notices.every((x) => x.process !== undefined),
      'queries the kernel did not attribute (the bursts from this test process) are not reported',
    );
  });

  it("hands addresses of a '!resolve' name a worker learns on demand to the primary's blocker", async () => {
    assert.equal(learned.length, 0, 'nothing pinned: only names under the wildcard, learned when asked');
    assert.deepEqual([...(await burst(pool.port, 'x.learn.example', 20, 20))], [['NXDOMAIN', 20]]);
    await waitFor('learned addresses', () => learned.some((l) => l.addrs.includes('198.51.100.7')));
  });

  it('replaces a killed worker, keeps answering meanwhile and keeps its counters', async () => {
    const before = await pool.stats();
    const victim = pool.workerPids()[0]!;
    process.kill(victim, 'SIGKILL');

    assert.deepEqual([...(await burst(pool.port, 'during.blocked.example', 100))], [['NXDOMAIN', 100]], 'the other workers answer');
    await waitFor('a replacement worker', () => pool.workerPids().length === WORKERS && !pool.workerPids().includes(victim));
    assert.equal(pool.restartCount, 1);
    const after = await pool.stats();
    assert.ok(after.queries >= before.queries + 100, `counters survive the worker: ${before.queries} -> ${after.queries}`);
    assert.deepEqual([...(await burst(pool.port, 'after.blocked.example', 300))], [['NXDOMAIN', 300]]);
  });

  it('brings a policy change and a mode change to every worker (a replaced one included)', async () => {
    const next = policy('allowed.example\n', 'v2');
    await pool.setPolicy(next);

    assert.deepEqual([...(await burst(pool.port, 'allowed.example', 600))], [['NXDOMAIN', 600]], 'every worker blocks the new entry');
    assert.deepEqual([...(await burst(pool.port, 'x.blocked.example', 300))], [['NOERROR', 300]], 'and none the old one');
    assert.equal((await tcpQuery('127.0.0.1', pool.port, makeQuery('allowed.example', 'A'))).answer.rcode, 'NXDOMAIN');

    events.length = 0;
    pool.setMode('audit');
    await waitFor('audit everywhere', async () => (await burst(pool.port, 'allowed.example', 50)).get('NOERROR') === 50);
    assert.deepEqual([...(await burst(pool.port, 'allowed.example', 300))], [['NOERROR', 300]], 'audit forwards');
    await waitFor('audit events', () => events.filter((e) => e.kind === 'dns_audit').length >= 300);
    assert.ok(events.every((e) => e.policy.version === 'v2'));
    pool.setMode('enforce');
  });
});

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { randomInt } from 'node:crypto';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import { AgentUnderTest, exec, Ran } from './agent-harness';

const HEARTBEAT_TIMEOUT_MS = 500;
/** What the proxy's upstream answers for the probe name. */
const VIA_PROXY = '192.0.2.1';
/** What the "original resolver" (a test server, not the proxy) answers for any name. */
const VIA_ORIGINAL = '192.0.2.77';

/**
 * The resolver a deploy's process asks directly: a UDP DNS server on port 53
 * of a random loopback address (so a parallel test picking one too does not
 * collide), answering every A query with VIA_ORIGINAL and counting queries.
 */
class OriginalResolver {
  queries: string[] = [];
  private constructor(
    private readonly sock: dgram.Socket,
    readonly host: string,
  ) {}

  static async start(): Promise<OriginalResolver> {
    const host = `127.77.${randomInt(1, 255)}.${randomInt(1, 255)}`;
    const sock = dgram.createSocket('udp4');
    const r = new OriginalResolver(sock, host);
    sock.on('message', (msg, rinfo) => {
      const q = dnsPacket.decode(msg);
      const question = q.questions?.[0];
      if (!question) return;
      r.queries.push(question.name);
      const reply = dnsPacket.encode({
        id: q.id,
        type: 'response',
        flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
        questions: q.questions,
        answers: question.type === 'A' ? [{ type: 'A', name: question.name, ttl: 5, data: VIA_ORIGINAL }] : [],
      });
      sock.send(reply, rinfo.port, rinfo.address);
    });
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(53, host, () => resolve());
    });
    return r;
  }

  close(): Promise<void> {
    return new Promise((r) => this.sock.close(() => r()));
  }
}

/** dig for `name` at `resolver`, from a process moved straight into the deploy cgroup (no `cgfence run`: the agent may be dead). */
function digInDeployCgroup(sut: AgentUnderTest, resolver: string, name: string, ...flags: string[]): Promise<Ran> {
  return exec('sh', ['-c', 'cg=$1; shift; echo $$ > "$cg/cgroup.procs" || exit 99; exec "$@"', 'sh', sut.cgroupPath, 'dig', '+short', '+time=1', '+tries=1', ...flags, `@${resolver}`, name], {
    timeoutMs: 10_000,
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function kernelCounters(sut: AgentUnderTest): Promise<Record<string, string>> {
  const st = await sut.cli(['agent', 'status', '--json']);
  assert.equal(st.code, 0, st.stderr);
  return (JSON.parse(st.stdout) as { counters: Record<string, string> }).counters;
}

for (const failMode of ['open', 'closed'] as const) {
  describe(`fail mode '${failMode}' after the agent is killed -9`, () => {
    let sut: AgentUnderTest;
    let original: OriginalResolver;
    before(async () => {
      original = await OriginalResolver.start();
      sut = await AgentUnderTest.start({
        policy: 'blocked.test\n*.listed.test\n',
        failMode,
        records: { 'probe.test': { A: [VIA_PROXY] } },
        extraArgs: ['--heartbeat-timeout-ms', String(HEARTBEAT_TIMEOUT_MS)],
      });
    });
    after(async () => {
      await sut?.stop();
      await original?.close();
    });

    it('redirects a query to any resolver to the proxy while the agent lives', async () => {
      const r = await digInDeployCgroup(sut, original.host, 'probe.test');
      assert.equal(r.stdout.trim(), VIA_PROXY, `dig: ${r.stdout}${r.stderr}`);
      assert.deepEqual(original.queries, [], 'the original resolver was not asked');
    });

    if (failMode === 'open') {
      it('lets unlisted names reach the original resolver once the agent is dead, still gets listed names no answer (kernel backstop), refuses TCP, and alerts when the agent is back', async () => {
        await sut.kill9();
        await sleep(HEARTBEAT_TIMEOUT_MS + 500);
        const r = await digInDeployCgroup(sut, original.host, 'probe.test');
        assert.equal(r.stdout.trim(), VIA_ORIGINAL, `dig: ${r.stdout}${r.stderr}`);
        assert.deepEqual(original.queries, ['probe.test'], 'the query reached the original resolver, not redirected');

        // The kernel's name backstop: listed names still get no answer, though DNS goes direct.
        for (const listed of ['blocked.test', 'BLOCKED.test', 'api.listed.test']) {
          const b = await digInDeployCgroup(sut, original.host, listed);
          assert.doesNotMatch(b.stdout, /192\.0\.2\./, `${listed}: no answer from anybody: ${b.stdout}${b.stderr}`);
        }
        const sibling = await digInDeployCgroup(sut, original.host, 'notlisted.test');
        assert.equal(sibling.stdout.trim(), VIA_ORIGINAL, 'an unlisted name resolves direct');
        assert.deepEqual(original.queries, ['probe.test', 'notlisted.test'], 'the listed names never reached the resolver');
        // TCP to port 53 is refused while the proxy is dead (the kernel cannot read a stream query by query).
        const tcp = await digInDeployCgroup(sut, original.host, 'probe.test', '+tcp');
        assert.doesNotMatch(tcp.stdout, /192\.0\.2\./, `dig +tcp: ${tcp.stdout}${tcp.stderr}`);
        const heard = original.queries.length;

        await sut.launch();
        const back = await digInDeployCgroup(sut, original.host, 'probe.test');
        assert.equal(back.stdout.trim(), VIA_PROXY, 'redirected to the proxy again');
        assert.equal(original.queries.length, heard, 'the original resolver got nothing more');

        const alert = await sut.waitForEvent('the stale-heartbeat alert the kernel queued while the agent was dead', (e) => e.action === 'alert');
        assert.match(alert.message ?? '', /heartbeat stale/);
        assert.match(alert.message ?? '', new RegExp(`${original.host.replace(/\./g, '\\.')}:53`));
        // comm is the sending thread's name (dig sends from its 'isc-net-*' worker threads).
        assert.match(alert.comm ?? '', /^(dig|isc-)/);
        assert.equal(alert.cgroupId, statSync(sut.cgroupPath, { bigint: true }).ino.toString(), 'the alert names the deploy cgroup the query came from');
        const counters = await kernelCounters(sut);
        assert.ok(BigInt(counters['kernel_failopen_bypass'] ?? '0') >= 1n, 'counted as a fail-open bypass');
        assert.ok(BigInt(counters['kernel_name_drops'] ?? '0') >= 3n, `the backstop's drops are counted: ${JSON.stringify(counters)}`);
        assert.ok(BigInt(counters['kernel_failopen_tcp_refused'] ?? '0') >= 1n, 'the refused TCP connect is counted');
        const dropped = await sut.waitForEvent('the name backstop drops the kernel queued while the agent was dead', (e) => e.action === 'alert' && /dropped by the kernel/.test(e.message ?? ''));
        assert.match(dropped.message ?? '', new RegExp(`${original.host.replace(/\./g, '\\.')}:53`));
      });
    } else {
      it('keeps redirecting DNS to the dead proxy, so it fails and never reaches the original resolver', async () => {
        await sut.kill9();
        await sleep(HEARTBEAT_TIMEOUT_MS + 500);
        const r = await digInDeployCgroup(sut, original.host, 'probe.test');
        assert.notEqual(r.code, 0, `dig must fail: ${r.stdout}${r.stderr}`);
        assert.doesNotMatch(r.stdout, /192\.0\.2\./, 'no answer from anybody');
        assert.deepEqual(original.queries, [], 'the original resolver was never asked');

        await sut.launch();
        const back = await digInDeployCgroup(sut, original.host, 'probe.test');
        assert.equal(back.stdout.trim(), VIA_PROXY, 'DNS works again through the proxy');
        assert.deepEqual(original.queries, []);
        assert.ok(BigInt((await kernelCounters(sut))['kernel_failclosed_redirects'] ?? '0') >= 1n, 'counted as a fail-closed redirect');
        assert.equal(sut.events().filter((e) => e.action === 'alert' && /heartbeat stale/.test(e.message ?? '')).length, 0, 'fail-closed raises no fail-open alert');
      });
    }
  });
}

describe('a busy agent never fails open', () => {
  const TIMEOUT_MS = 300;
  let sut: AgentUnderTest;
  let original: OriginalResolver;
  before(async () => {
    original = await OriginalResolver.start();
    sut = await AgentUnderTest.start({
      policy: 'blocked.test\n',
      failMode: 'open',
      records: { 'probe.test': { A: [VIA_PROXY] } },
      extraArgs: ['--heartbeat-timeout-ms', String(TIMEOUT_MS)],
    });
  });
  after(async () => {
    await sut?.stop();
    await original?.close();
  });

  it('keeps redirecting DNS while its event loop is blocked for many heartbeat timeouts by a large policy reload', async () => {
    // 200,000 names: reading and validating them runs on the agent's main
    // thread, for far longer than the timeout (seconds on this machine).
    const big = ['blocked.test', ...Array.from({ length: 200_000 }, (_, i) => `host-${i}.busy.example`)].join('\n') + '\n';
    // A process in the deploy cgroup asks the original resolver every 20 ms meanwhile, until stopFile exists.
    const stopFile = join(sut.dir, 'stop-sender');
    const query = dnsPacket.encode({ type: 'query', id: 7, questions: [{ type: 'A', name: 'probe.test' }] }).toString('hex');
    const sender = exec(
      'sh',
      [
        '-c',
        'echo $$ > "$1/cgroup.procs" || exit 99; exec python3 -c "$2" "$3" "$4" "$5"',
        'sh',
        sut.cgroupPath,
        'import socket,sys,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nq=bytes.fromhex(sys.argv[2])\nimport os\nn=0\nwhile not os.path.exists(sys.argv[3]):\n  s.sendto(q,(sys.argv[1],53)); n+=1; time.sleep(0.02)\nprint(n)',
        original.host,
        query,
        stopFile,
      ],
      { timeoutMs: 60_000 },
    );
    await sleep(300);
    sut.writePolicy(big);
    const t0 = performance.now();
    sut.signal('SIGHUP');
    // Done when the status reports the new policy (the control socket cannot answer while the loop is blocked).
    for (;;) {
      const st = await sut.cli(['agent', 'status', '--json'], { timeoutMs: 60_000 });
      if (st.code !== 0) assert.match(st.stderr, /did not answer/, 'busy, not broken');
      else if ((JSON.parse(st.stdout) as { policy: { domains: number } }).policy.domains > 200_000) break;
      assert.ok(performance.now() - t0 < 60_000, 'the reload finished within a minute');
      await sleep(50);
    }
    const reloadMs = performance.now() - t0;
    await sleep(500);
    writeFileSync(stopFile, '');
    const sent = await sender;

    assert.equal(sent.code, 0, sent.stderr);
    // The sender ran through the whole reload (one query per 20 ms and its own overhead: at least one per 40 ms).
    assert.ok(Number(sent.stdout.trim()) >= Math.floor(reloadMs / 40), `the sender kept sending through the ${Math.round(reloadMs)} ms reload: ${sent.stdout}`);
    assert.ok(reloadMs > 3 * TIMEOUT_MS, `the reload kept the agent busy for ${Math.round(reloadMs)} ms (> 3 heartbeat timeouts)`);
    const counters = await kernelCounters(sut);
    assert.deepEqual(original.queries.length, 0, `not one query bypassed the proxy (${sent.stdout.trim()} sent, reload ${Math.round(reloadMs)} ms): ${JSON.stringify(counters)}`);
    assert.equal(counters['kernel_failopen_bypass'], '0', JSON.stringify(counters));
    assert.equal(counters['kernel_proxy_socket_missing'], '0');
    assert.equal(sut.events().filter((e) => e.action === 'alert' && /heartbeat stale/.test(e.message ?? '')).length, 0, 'no proxy-down alert');
  });
});

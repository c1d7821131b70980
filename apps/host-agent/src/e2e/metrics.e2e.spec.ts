// The agent's Prometheus endpoint during a real run: a `cgfence run` whose
// command asks for a blocked name and connects to a blocked address, scraped
// while it runs and after. Real kernel, real agent process, real dig.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, waitFor } from '@cgfence/devservices';
import { AgentUnderTest } from './agent-harness';

/** One sample of a scrape: the value of `name{labels}` (labels as written, in order), or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('agent metrics', () => {
  let sut: AgentUnderTest;
  let base: string;
  before(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    sut = await AgentUnderTest.start({
      policy: 'blocked.test\n127.0.0.9/32\n',
      records: { 'allowed.test': { A: ['192.0.2.1'] } },
      extraArgs: ['--metrics-listen', `127.0.0.1:${port}`],
    });
  });
  after(async () => {
    await sut?.stop();
  });

  const scrape = async (): Promise<string> => {
    const res = await fetch(`${base}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    return res.text();
  };

  it('answers /healthz and /readyz, and only GET on its three paths', async () => {
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    const ready = await fetch(`${base}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { ready: true, proxy: true, kernel: true });
    assert.equal((await fetch(`${base}/nope`)).status, 404);
    assert.equal((await fetch(`${base}/metrics`, { method: 'POST', body: 'x' })).status, 405);
  });

  it('shows the run and its DNS and IP blocks while the run is still going, then the run ended', async () => {
    const before = await scrape();
    assert.equal(sample(before, 'cgfence_agent_runs_active'), 0);
    assert.equal(sample(before, 'cgfence_agent_blocks_total{method="dns",action="blocked"}'), 0);
    assert.equal(sample(before, 'cgfence_agent_blocks_total{method="unix",action="blocked"}'), 0);
    assert.match(before, /^cgfence_agent_policy_info\{version="file:[0-9a-f]{12}",hash="sha256:[0-9a-f]{64}",source="[^"]+",mode="enforce",fail_mode="open"\} 1$/m);
    assert.equal(sample(before, 'cgfence_agent_policy_entries{kind="domain"}'), 1);
    assert.equal(sample(before, 'cgfence_agent_policy_entries{kind="cidr4"}'), 1);

    const release = join(sut.dir, 'release');
    const run = sut.run(
      [
        'sh',
        '-c',
        `dig +time=2 +tries=1 @127.0.0.53 blocked.test; dig +time=2 +tries=1 @127.0.0.53 allowed.test; ` +
          `python3 -c "import socket; socket.create_connection(('127.0.0.9', 80), 1)" 2>/dev/null; ` +
          // A connect to nscd's socket: the unix guard refuses it, a series of its own (not an IP block).
          `python3 -c "import socket; socket.socket(socket.AF_UNIX).connect('/var/run/nscd/socket')" 2>/dev/null; ` +
          `while [ ! -e ${release} ]; do sleep 0.1; done`,
      ],
      { labels: { job: 'metrics' }, timeoutMs: 30_000 },
    );
    let during = '';
    await waitFor('the run and both blocks in a scrape', async () => {
      during = await scrape();
      return (
        sample(during, 'cgfence_agent_runs_active') === 1 &&
        (sample(during, 'cgfence_agent_blocks_total{method="dns",action="blocked"}') ?? 0) >= 1 &&
        (sample(during, 'cgfence_agent_blocks_total{method="ip",action="blocked"}') ?? 0) >= 1 &&
        (sample(during, 'cgfence_agent_blocks_total{method="unix",action="blocked"}') ?? 0) >= 1
      );
    }, 15_000);
    assert.equal(sample(during, 'cgfence_agent_runs_started_total'), 1);
    assert.ok((sample(during, 'cgfence_agent_dns_queries_total') ?? 0) >= 2);
    assert.ok((sample(during, 'cgfence_agent_dns_answers_total{decision="blocked"}') ?? 0) >= 1);
    assert.ok((sample(during, 'cgfence_agent_dns_answers_total{decision="forwarded"}') ?? 0) >= 1);
    assert.ok((sample(during, 'cgfence_agent_kernel_events_total{counter="ip_blocks"}') ?? 0) >= 1);
    assert.ok((sample(during, 'cgfence_agent_kernel_events_total{counter="dns_redirects"}') ?? 0) >= 2);
    assert.ok((sample(during, 'cgfence_agent_dns_latency_seconds_count') ?? 0) >= 2);
    assert.equal(sample(during, 'cgfence_agent_proxy_healthy'), 1);

    writeFileSync(release, '');
    assert.equal((await run).code, 0);
    const afterRun = await scrape();
    assert.equal(sample(afterRun, 'cgfence_agent_runs_active'), 0);
    assert.equal(sample(afterRun, 'cgfence_agent_runs_started_total'), 1);
  });

  it('records a policy reload: the info metric follows and the apply is timed', async () => {
    sut.writePolicy('blocked.test\nother.test\n127.0.0.9/32\n');
    sut.signal('SIGHUP');
    let text = '';
    await waitFor('the reloaded policy in a scrape', async () => {
      text = await scrape();
      return sample(text, 'cgfence_agent_policy_entries{kind="domain"}') === 2;
    });
    assert.ok((sample(text, 'cgfence_agent_policy_apply_seconds_count') ?? 0) >= 1);
  });
});

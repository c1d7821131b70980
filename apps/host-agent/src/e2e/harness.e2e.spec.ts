import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AgentUnderTest } from './agent-harness';

describe(AgentUnderTest.name, () => {
  let sut: AgentUnderTest;
  before(async () => {
    sut = await AgentUnderTest.start({ policy: 'github.com\n', records: { 'example.com': { A: ['192.0.2.10'] } } });
  });
  after(() => sut?.stop());

  it('blocks a listed name for a run and lets an unlisted one resolve through the local upstream', async () => {
    const blocked = await sut.run(['dig', '+time=2', '+tries=1', '@127.0.0.53', 'github.com'], { labels: { job: 'harness' } });
    assert.match(blocked.stdout, /status: NXDOMAIN/);
    const allowed = await sut.run(['dig', '+short', '+time=2', '+tries=1', '@127.0.0.53', 'example.com']);
    assert.equal(allowed.stdout.trim(), '192.0.2.10');
    const e = await sut.waitForEvent('the block event', (r) => r.qname === 'github.com');
    assert.equal(e.labels['job'], 'harness');
    assert.match(e.cmdline ?? '', /^dig .*github\.com$/);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CommandRedactor, compileRedactPatterns } from '@cgfence/proto';
import type { DnsPolicyEvent } from '../dns/dns-events';
import { capCmdline, CMDLINE_CUT_MARKER, MAX_CMDLINE_BYTES } from '../dns/process-details';
import { alertRecord, recordFromDnsEvent, recordFromIpBlock, type RunLookup } from './journal-record';

const runs: RunLookup = {
  byCgroupId: (id) => (id === 4242n ? { runId: 'run-7', labels: { app: 'web', stage: 'canary' } } : undefined),
};
const ctx = { host: 'web-01', cohort: 'eu', runs, newId: () => '0190c2d3-0000-7000-8000-000000000001' };

const event: DnsPolicyEvent = {
  kind: 'dns_block',
  qname: 'github.com',
  qtype: 'AAAA',
  entry: 'github.com',
  client: { address: '127.0.0.1', port: 40000 },
  transport: 'udp',
  process: { pid: 1001, tgid: 1000, comm: 'curl', cmdline: 'curl https://github.com', uid: 0, cgroupId: 4242n },
  policy: { version: 'v3', hash: 'sha256:abc' },
  time: new Date('2026-04-16T10:00:00.000Z'),
};

describe(recordFromDnsEvent.name, () => {
  it('fills every field of a DNS block, with the run found from the cgroup id', () => {
    assert.deepEqual(recordFromDnsEvent(event, ctx), {
      id: '0190c2d3-0000-7000-8000-000000000001',
      time: '2026-04-16T10:00:00.000Z',
      host: 'web-01',
      cohort: 'eu',
      runId: 'run-7',
      labels: { app: 'web', stage: 'canary' },
      pid: 1000,
      comm: 'curl',
      cmdline: 'curl https://github.com',
      cmdlineRedacted: false,
      uid: 0,
      cgroupId: '4242',
      qname: 'github.com',
      qtype: 'AAAA',
      entry: 'github.com',
      cnameTarget: null,
      action: 'blocked',
      method: 'dns',
      policyVersion: 'v3',
      policyHash: 'sha256:abc',
      destination: null,
      message: null,
    });
  });

  it('keeps the listed name an allowed name led to through its answer chain', () => {
    const sut = recordFromDnsEvent({ ...event, qname: 'releases.internal.example', cnameTarget: 'objects.githubusercontent.com' }, ctx);
    assert.equal(sut.qname, 'releases.internal.example');
    assert.equal(sut.cnameTarget, 'objects.githubusercontent.com');
  });

  it('records an audit without a process as audited with nulls, not missing keys', () => {
    const sut = recordFromDnsEvent({ ...event, kind: 'dns_audit', process: undefined }, { host: 'web-01' });
    assert.equal(sut.action, 'audited');
    assert.equal(sut.runId, null);
    assert.deepEqual(sut.labels, {});
    assert.equal(sut.pid, null);
    assert.equal(sut.cohort, null);
    assert.ok('cmdline' in sut && sut.cmdline === null);
    assert.equal(sut.cmdlineRedacted, false);
  });

  it('takes secrets out of the command line and says so, with no redactor given (built-in shapes)', () => {
    const token = `ghp_${'A1b2C3d4'.repeat(5)}`;
    const cmdline = `curl -H Authorization: token ${token} https://deploy:hunter2@github.com/x --password=s3cret`;
    const sut = recordFromDnsEvent({ ...event, process: { ...event.process!, cmdline } }, ctx);
    assert.equal(sut.cmdline, 'curl -H Authorization: token [REDACTED] https://deploy:[REDACTED]@github.com/x --password=[REDACTED]');
    assert.equal(sut.cmdlineRedacted, true);
  });

  it('keeps the redacted command line within MAX_CMDLINE_BYTES when markers outgrow the secrets', () => {
    const cmdline = capCmdline(`x ${'--token=a '.repeat(600)}`)!;
    assert.equal(Buffer.byteLength(cmdline), MAX_CMDLINE_BYTES);
    const sut = recordFromDnsEvent({ ...event, process: { ...event.process!, cmdline } }, ctx);
    assert.ok(sut.cmdline!.startsWith('x --token=[REDACTED] --token=[REDACTED]'));
    assert.ok(sut.cmdline!.endsWith(CMDLINE_CUT_MARKER));
    assert.equal(Buffer.byteLength(sut.cmdline!), MAX_CMDLINE_BYTES);
  });

  it("applies the context's extra patterns", () => {
    const redactor = new CommandRedactor(compileRedactPatterns(['corp-[0-9]{6}']));
    const sut = recordFromDnsEvent({ ...event, process: { ...event.process!, cmdline: 'deploy --ticket corp-123456 now' } }, { ...ctx, redactor });
    assert.equal(sut.cmdline, 'deploy --ticket [REDACTED] now');
    assert.equal(sut.cmdlineRedacted, true);
  });
});

describe(recordFromIpBlock.name, () => {
  it('records an IP-layer block with its destination', () => {
    const sut = recordFromIpBlock({ destination: '10.1.2.3:443', entry: '10.0.0.0/8', time: event.time, process: event.process, policy: event.policy }, ctx);
    assert.equal(sut.method, 'ip');
    assert.equal(sut.action, 'blocked');
    assert.equal(sut.destination, '10.1.2.3:443');
    assert.equal(sut.qname, null);
    assert.equal(sut.runId, 'run-7');
  });

  it('redacts the command line of an IP-layer (and unix-guard) block too', () => {
    const proc = { ...event.process!, cmdline: 'psql postgres://app:pw123@db.internal/app' };
    const sut = recordFromIpBlock({ destination: 'unix:/run/nscd/socket', time: event.time, process: proc }, ctx);
    assert.equal(sut.cmdline, 'psql postgres://app:[REDACTED]@db.internal/app');
    assert.equal(sut.cmdlineRedacted, true);
  });
});

describe(alertRecord.name, () => {
  it('records an alert with its message', () => {
    const sut = alertRecord('dns proxy down: failing open', ctx, { time: event.time });
    assert.equal(sut.action, 'alert');
    assert.equal(sut.message, 'dns proxy down: failing open');
  });
});

import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import pino from 'pino';
import { BlockLog, formatBlockLine } from './block-log';
import type { JournalRecord } from './journal-record';

const record: JournalRecord = {
  id: '0190c2d3-0000-7000-8000-000000000001',
  time: '2026-04-16T10:00:00.000Z',
  host: 'web-01',
  cohort: null,
  runId: '0190c2d3-1111-7000-8000-000000000002',
  labels: { stage: 'canary', app: 'web' },
  pid: 266767,
  comm: 'curl',
  cmdline: 'curl https://github.com',
  uid: 0,
  cgroupId: '4242',
  qname: 'github.com',
  qtype: 'A',
  entry: 'github.com',
  action: 'blocked',
  method: 'dns',
  policyVersion: 'v3',
  policyHash: 'sha256:abc',
  destination: null,
  message: null,
};

describe(formatBlockLine.name, () => {
  it('says what was blocked, for whom, by which entry and policy, on one line', () => {
    assert.equal(
      formatBlockLine(record),
      'DNS BLOCKED domain=github.com qtype=A entry=github.com pid=266767 comm=curl cmd="curl https://github.com" uid=0 ' +
        'run=0190c2d3-1111-7000-8000-000000000002 labels=app=web,stage=canary policy=v3 event=0190c2d3-0000-7000-8000-000000000001',
    );
  });

  it('marks audits as would-block and prints unknowns as -', () => {
    const line = formatBlockLine({ ...record, action: 'audited', pid: null, comm: null, cmdline: null, uid: null, runId: null, labels: {} });
    assert.match(line, /^DNS AUDIT would-block domain=github.com /);
    assert.match(line, / pid=- comm=- cmd=- uid=- run=- labels=- /);
  });

  it('quotes values that would break the line apart', () => {
    const line = formatBlockLine({ ...record, comm: 'my tool', cmdline: 'sh -c "curl x"\nrm -rf /', labels: { note: 'two words' } });
    assert.ok(!line.includes('\n'), line);
    assert.match(line, / comm="my tool" /);
    assert.match(line, / cmd="sh -c \\"curl x\\"\\nrm -rf \/" /);
    assert.match(line, / labels="note=two words" /);
  });

  it('describes an IP block by its destination', () => {
    const line = formatBlockLine({ ...record, method: 'ip', qname: null, qtype: null, entry: '10.0.0.0/8', destination: '10.1.2.3:443' });
    assert.match(line, /^IP BLOCKED dst=10.1.2.3:443 entry=10.0.0.0\/8 pid=266767 /);
  });
});

describe(BlockLog.name, () => {
  it('writes the line through pino at warn level with the event id', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const sut = new BlockLog(pino({ base: undefined }, sink));
    sut.write(record);
    assert.equal(lines.length, 1);
    const logged = JSON.parse(lines[0]) as { level: number; msg: string; eventId: string };
    assert.equal(logged.level, 40);
    assert.equal(logged.msg, formatBlockLine(record));
    assert.equal(logged.eventId, record.id);
  });
});

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
  cmdlineRedacted: false,
  uid: 0,
  cgroupId: '4242',
  qname: 'github.com',
  qtype: 'A',
  entry: 'github.com',
  cnameTarget: null,
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

  it('names the listed name an allowed name led to through its answer chain', () => {
    const line = formatBlockLine({ ...record, qname: 'releases.internal.example', entry: '*.githubusercontent.com', cnameTarget: 'objects.githubusercontent.com' });
    assert.match(line, /^DNS BLOCKED domain=releases.internal.example qtype=A entry=\*.githubusercontent.com via=objects.githubusercontent.com pid=266767 /);
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

  function capture(): { logger: pino.Logger; lines: Array<{ level: number; msg: string; runId: string | null; suppressed?: number }> } {
    const lines: Array<{ level: number; msg: string; runId: string | null; suppressed?: number }> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string; runId: string | null });
        done();
      },
    });
    return { logger: pino({ base: undefined }, sink), lines };
  }

  it('writes at most linesPerWindow lines per run per window and then says how many it held back', () => {
    const { logger, lines } = capture();
    let now = 1_000_000;
    const sut = new BlockLog(logger, { linesPerWindow: 3, windowMs: 1000, clock: () => now });
    for (let i = 0; i < 1000; i++) sut.write({ ...record, id: `e${i}` });
    for (let i = 0; i < 5; i++) sut.write({ ...record, runId: 'other-run', id: `o${i}` });
    assert.equal(lines.filter((l) => l.runId === record.runId).length, 3);
    assert.equal(lines.filter((l) => l.runId === 'other-run').length, 3, 'one noisy run does not use up the others');
    assert.equal(sut.suppressed, 997 + 2);
    now += 1000;
    sut.write({ ...record, id: 'next' });
    const summary = lines.find((l) => l.suppressed !== undefined && l.runId === record.runId);
    assert.equal(summary?.suppressed, 997);
    assert.match(summary?.msg ?? '', /^BLOCK LOG suppressed=997 run=0190c2d3-1111-7000-8000-000000000002 /);
    assert.equal(lines.at(-1)?.msg, formatBlockLine({ ...record, id: 'next' }));
    sut.close();
    assert.equal(lines.find((l) => l.suppressed !== undefined && l.runId === 'other-run')?.suppressed, 2);
  });

  it('never holds back alerts', () => {
    const { logger, lines } = capture();
    const sut = new BlockLog(logger, { linesPerWindow: 1, clock: () => 0 });
    for (let i = 0; i < 10; i++) sut.write({ ...record, action: 'alert', message: `a${i}` });
    assert.equal(lines.length, 10);
    sut.close();
  });

  it('keeps at most maxTrackedRuns windows: further runs share one allowance', () => {
    const { logger, lines } = capture();
    const sut = new BlockLog(logger, { linesPerWindow: 2, maxTrackedRuns: 4, clock: () => 0 });
    for (let r = 0; r < 100; r++) for (let i = 0; i < 5; i++) sut.write({ ...record, runId: `run-${r}` });
    // 4 tracked runs × 2 lines, then the shared allowance of 2 for the 96 others.
    assert.equal(lines.length, 4 * 2 + 2);
    assert.equal(sut.suppressed, 500 - 10);
    sut.close();
  });
});


import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CMDLINE_CUT_MARKER, MAX_CMDLINE_BYTES, capCmdline, describeProcess, type ProcessReader } from './process-details';

function reader(table: Record<number, { cmdline?: string; uid?: number; comm?: string }>): ProcessReader {
  return {
    cmdline: (pid) => table[pid]?.cmdline ?? null,
    uid: (pid) => table[pid]?.uid ?? null,
    comm: (pid) => table[pid]?.comm ?? null,
  };
}

describe(describeProcess.name, () => {
  it('adds the command line of the process (thread group) to what the kernel said', () => {
    const sut = describeProcess({ pid: 101, tgid: 100, uid: 1000, comm: 'curl', cgroupId: 9n }, reader({ 100: { cmdline: 'curl https://github.com', uid: 0 } }));
    assert.deepEqual(sut, { pid: 101, tgid: 100, comm: 'curl', cmdline: 'curl https://github.com', uid: 1000, cgroupId: 9n });
  });

  it('takes uid from /proc when the kernel did not record it, and comm from the process', () => {
    const sut = describeProcess({ pid: 100, tgid: 100, uid: -1, comm: '', cgroupId: 9n }, reader({ 100: { cmdline: 'x', uid: 33, comm: 'wget' } }));
    assert.equal(sut.uid, 33);
    assert.equal(sut.comm, 'wget');
  });

  it('keeps what the kernel said when the process is already gone', () => {
    const sut = describeProcess({ pid: 100, tgid: 100, comm: 'curl', cgroupId: 9n }, reader({}));
    assert.deepEqual(sut, { pid: 100, tgid: 100, comm: 'curl', cmdline: null, uid: null, cgroupId: 9n });
  });
  it('names the process, not the thread that sent the query, and keeps the thread name once the process is gone', () => {
    const live = describeProcess({ pid: 201, tgid: 200, uid: 0, comm: 'isc-net-0000', cgroupId: 9n }, reader({ 200: { cmdline: 'dig github.com', comm: 'dig' } }));
    assert.equal(live.comm, 'dig');
    const gone = describeProcess({ pid: 201, tgid: 200, uid: 0, comm: 'isc-net-0000', cgroupId: 9n }, reader({}));
    assert.equal(gone.comm, 'isc-net-0000');
  });

  it(`cuts a command line longer than ${MAX_CMDLINE_BYTES} bytes and marks the cut`, () => {
    const sut = describeProcess({ pid: 100, tgid: 100, comm: 'sh', cgroupId: 9n }, reader({ 100: { cmdline: `sh -c ${'x'.repeat(1 << 20)}` } }));
    assert.equal(Buffer.byteLength(sut.cmdline ?? '', 'utf8'), MAX_CMDLINE_BYTES);
    assert.ok(sut.cmdline?.startsWith('sh -c xxx'));
    assert.ok(sut.cmdline?.endsWith(CMDLINE_CUT_MARKER));
  });
});

describe(capCmdline.name, () => {
  it('leaves a line that fits alone and never splits a character', () => {
    assert.equal(capCmdline('a'.repeat(MAX_CMDLINE_BYTES)), 'a'.repeat(MAX_CMDLINE_BYTES));
    assert.equal(capCmdline(null), null);
    const cut = capCmdline('é'.repeat(MAX_CMDLINE_BYTES)) ?? '';
    assert.ok(Buffer.byteLength(cut, 'utf8') <= MAX_CMDLINE_BYTES);
    assert.ok(!cut.includes('\ufffd'));
    assert.ok(cut.endsWith(CMDLINE_CUT_MARKER));
  });
});

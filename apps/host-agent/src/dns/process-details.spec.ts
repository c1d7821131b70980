import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeProcess, type ProcessReader } from './process-details';

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

  it('takes uid and comm from /proc only when the kernel did not record them', () => {
    const sut = describeProcess({ pid: 100, tgid: 100, uid: -1, comm: '', cgroupId: 9n }, reader({ 100: { cmdline: 'x', uid: 33, comm: 'wget' } }));
    assert.equal(sut.uid, 33);
    assert.equal(sut.comm, 'wget');
  });

  it('keeps what the kernel said when the process is already gone', () => {
    const sut = describeProcess({ pid: 100, tgid: 100, comm: 'curl', cgroupId: 9n }, reader({}));
    assert.deepEqual(sut, { pid: 100, tgid: 100, comm: 'curl', cmdline: null, uid: null, cgroupId: 9n });
  });
});

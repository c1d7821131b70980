import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { CMDLINE_CUT_MARKER, MAX_CMDLINE_BYTES, procfsReader } from './process-details';

describe('procfsReader (real /proc)', () => {
  it('reads no more than the cap of a real process with a 1 MiB command line', () => {
    // One argument may be at most 128 KiB (MAX_ARG_STRLEN): ten of 100 KiB.
    const args = Array.from({ length: 10 }, () => 'y'.repeat(100_000));
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)', ...args], { stdio: 'ignore' });
    try {
      const cmdline = procfsReader.cmdline(child.pid as number) ?? '';
      assert.equal(Buffer.byteLength(cmdline, 'utf8'), MAX_CMDLINE_BYTES);
      assert.ok(cmdline.endsWith(CMDLINE_CUT_MARKER));
      assert.ok(cmdline.includes('setTimeout'));
    } finally {
      child.kill('SIGKILL');
    }
  });
});


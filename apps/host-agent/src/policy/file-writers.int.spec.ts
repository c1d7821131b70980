// writersOf reads /proc on the real kernel: which processes hold a file open for writing.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writersOf } from './file-writers';

describe(writersOf.name, () => {
  const dir = mkdtempSync(join(tmpdir(), 'cgfence-writers-'));
  const file = join(dir, 'policy.txt');
  writeFileSync(file, 'a.example\n');

  it('finds a process holding the file open for writing, not one reading it, and nothing once it is closed', async () => {
    assert.deepEqual(writersOf(file), []);
    const reader = openSync(file, 'r');
    assert.deepEqual(writersOf(file, -1), [], 'a reader is not a writer');
    closeSync(reader);
    const fd = openSync(file, 'r+');
    const mine = writersOf(file, -1);
    assert.deepEqual(mine.map((w) => w.pid), [process.pid]);
    assert.deepEqual(writersOf(file), [], "the caller's own descriptors are left out");
    closeSync(fd);
    assert.deepEqual(writersOf(file, -1), []);
    // Another process, stopped mid-write (as a descheduled writer).
    const child = spawn('sh', ['-c', `exec 3>>"$0"; kill -STOP $$; sleep 0`, file], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(writersOf(file).map((w) => w.pid), [child.pid]);
    } finally {
      child.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('returns nothing for a file that does not exist', () => {
    assert.deepEqual(writersOf(join(dir, 'missing')), []);
  });
});

// writersOf reads /proc on the real kernel: which processes hold a file open for writing.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type FileWriter, writersOf } from './file-writers';
import { readStable } from './policy-file.source';

describe(writersOf.name, () => {
  const dir = mkdtempSync(join(tmpdir(), 'cgfence-writers-'));
  const file = join(dir, 'policy.txt');
  writeFileSync(file, 'a.example\n');

  it('finds a process holding the file open for writing, not one reading it, and nothing once it is closed', async () => {
    assert.deepEqual(await writersOf(file), []);
    const reader = openSync(file, 'r');
    assert.deepEqual(await writersOf(file, -1), [], 'a reader is not a writer');
    closeSync(reader);
    const fd = openSync(file, 'r+');
    const mine = await writersOf(file, -1);
    assert.deepEqual(mine.map((w) => w.pid), [process.pid]);
    assert.deepEqual(await writersOf(file), [], "the caller's own descriptors are left out");
    closeSync(fd);
    assert.deepEqual(await writersOf(file, -1), []);
    // Another process, stopped mid-write (as a descheduled writer).
    const child = spawn('sh', ['-c', `exec 3>>"$0"; kill -STOP $$; sleep 0`, file], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual((await writersOf(file)).map((w) => w.pid), [child.pid]);
    } finally {
      child.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('returns nothing for a file that does not exist', async () => {
    assert.deepEqual(await writersOf(join(dir, 'missing')), []);
  });
});

describe(readStable.name, () => {
  const dir = mkdtempSync(join(tmpdir(), 'cgfence-stable-'));
  const file = join(dir, 'policy.txt');
  writeFileSync(file, 'a.example\n');
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('waits while a process holds the file open for writing, and takes it once the writer is gone', async () => {
    let asked = 0;
    const writers = async (): Promise<FileWriter[]> => (++asked <= 2 ? [{ pid: 4242, comm: 'slowpoke' }] : []);
    const sut = await readStable(file, 10, 20, writers);
    assert.deepEqual(sut, { ok: true, text: 'a.example\n' });
    assert.equal(asked, 3);
  });

  it('refuses a file held open for writing throughout, naming the writer', async () => {
    const sut = await readStable(file, 5, 4, async () => [{ pid: 4242, comm: 'slowpoke' }]);
    assert.equal(sut.ok, false);
    assert.match((sut as { message: string }).message, /held open for writing by pid 4242 slowpoke/);
  });
});

// Usage mistakes a new user makes, run as the user runs them (the cgfence
// executable as a process): each gets one clear line and exit code 2, never a
// stack trace, and before any request is sent (no server runs here).
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BIN = join(__dirname, '..', '..', 'bin', 'cgfence');

describe('cgfence usage errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cgfence-usage-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  // Port 9 on loopback: nothing answers, so any request would fail differently.
  const env = { ...process.env, CGFENCE_SERVER: 'http://127.0.0.1:9', CGFENCE_TOKEN: '', CGFENCE_TOKEN_FILE: '' };
  const cgfence = (args: string[]) => {
    const r = spawnSync(process.execPath, [BIN, ...args], { env, encoding: 'utf8', timeout: 30_000 });
    return { code: r.status, err: r.stderr };
  };
  const noStack = (err: string) => assert.doesNotMatch(err, /\n\s+at /, err);

  it('names a --token-file that is missing, empty or a directory', () => {
    const empty = join(dir, 'empty');
    writeFileSync(empty, '\n');
    for (const [file, expected] of [
      [join(dir, 'missing'), /--token-file .*missing: no such file/],
      [empty, /--token-file .*empty is empty/],
      [dir, /is a directory/],
    ] as const) {
      const r = cgfence(['--token-file', file, 'blocklist', 'list']);
      assert.equal(r.code, 2, r.err);
      assert.match(r.err, expected);
      assert.doesNotMatch(r.err, /CGFENCE_TOKEN/, 'the token file is named, not a missing token');
      noStack(r.err);
    }
  });

  it('refuses a --server without a scheme with a hint', () => {
    for (const args of [['--server', '127.0.0.1:28080', 'blocklist', 'list'], ['--server', '127.0.0.1:28080', 'events', 'query', '--format', 'csv']]) {
      const r = cgfence(args);
      assert.equal(r.code, 2, r.err);
      assert.match(r.err, /--server must be a URL like http:\/\/127\.0\.0\.1:28080.*add http:\/\//);
      noStack(r.err);
    }
    const ftp = cgfence(['--server', 'ftp://x', 'blocklist', 'list']);
    assert.equal(ftp.code, 2);
  });
});

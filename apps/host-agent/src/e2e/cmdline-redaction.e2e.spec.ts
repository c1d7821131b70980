// Issue 13, "Secrets in command lines": a run whose process carries secrets
// on its command line (an option, a token, a URL password, a --redact-pattern
// shape) looks up a listed name; the journal, `cgfence agent events` (JSON
// and text), the block log and the run's own record hold [REDACTED], never
// the secret, and the event says it was redacted. A usage error for a bad
// --redact-pattern. Real kernel, real agent, the test's own upstream.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentUnderTest, CGFENCE, exec } from './agent-harness';

const PASSWORD = 'hunter2-e2e-pw';
const TOKEN = `ghp_${'Q7r8S9t0U1'.repeat(4)}`;
const URL_PW = 'urlpw-e2e-5150';
const CUSTOM = 'corp-918273';
const SECRETS = [PASSWORD, TOKEN, URL_PW, CUSTOM];
/** Prints its pid, looks github.com up through glibc (blocked or audited either way), exits 0; its arguments are ignored. */
const LOOKUP = ['python3', '-c', 'import os, socket\nprint(f"pid={os.getpid()}", flush=True)\ntry: socket.getaddrinfo("github.com", 443)\nexcept OSError: pass'];

for (const mode of ['enforce', 'audit'] as const) {
  describe(`${AgentUnderTest.name}: secrets in command lines are redacted before events are written (${mode})`, () => {
    let sut: AgentUnderTest;
    before(async () => {
      sut = await AgentUnderTest.start({
        policy: 'github.com\n',
        mode,
        records: { 'github.com': { A: ['127.0.0.66'] } },
        extraArgs: ['--redact-pattern', 'corp-[0-9]{6}'],
      });
    });
    after(async () => sut?.stop());

    it('the journal, agent events, the block log and the run record hold [REDACTED] and not the secrets', async () => {
      // The secrets are arguments of the process that looks the listed name up, so in its /proc cmdline.
      const r = await sut.run([...LOOKUP, `--password=${PASSWORD}`, TOKEN, `https://deploy:${URL_PW}@git.example/r`, CUSTOM], { labels: { test: 'redact' } });
      assert.equal(r.code, 0, r.stderr);
      const pid = Number(/pid=(\d+)/.exec(r.stdout)?.[1]);
      const e = await sut.waitForEvent('the block of the secret-carrying process', (x) => x.qname === 'github.com' && x.pid === pid);
      assert.equal(e.action, mode === 'enforce' ? 'blocked' : 'audited');
      assert.equal(e.cmdlineRedacted, true);
      assert.match(e.cmdline ?? '', /socket\.getaddrinfo/);
      assert.match(e.cmdline ?? '', /--password=\[REDACTED\] \[REDACTED\] https:\/\/deploy:\[REDACTED\]@git\.example\/r \[REDACTED\]/);

      const journal = readFileSync(join(sut.stateDir, 'events.jsonl'), 'utf8');
      const eventsJson = await sut.cli(['agent', 'events', '--json']);
      const eventsText = await sut.cli(['agent', 'events']);
      assert.equal(eventsJson.code, 0, eventsJson.stderr);
      assert.equal(eventsText.code, 0, eventsText.stderr);
      const fromCli = eventsJson.stdout.trim().split('\n').map((l) => JSON.parse(l) as { pid: number; cmdline: string | null; cmdlineRedacted: boolean });
      assert.ok(fromCli.some((x) => x.pid === pid && x.cmdlineRedacted && (x.cmdline ?? '').includes('[REDACTED]')), eventsJson.stdout);
      assert.match(eventsText.stdout, /\[REDACTED\]/);
      const runs = readFileSync(join(sut.stateDir, 'runs.json'), 'utf8');
      assert.match(runs, /\[REDACTED\]/, 'the run record keeps the command, redacted');
      for (const [where, text] of Object.entries({ journal, eventsJson: eventsJson.stdout, eventsText: eventsText.stdout, blockLog: sut.log, runs })) {
        for (const secret of SECRETS) assert.ok(!text.includes(secret), `${where} holds ${secret}`);
      }
      // The block log line is written with the journal record; give the agent's stdout a moment to arrive.
      for (let i = 0; i < 50 && !/DNS (BLOCKED|AUDIT)/.test(sut.log); i++) await new Promise((res) => setTimeout(res, 100));
      assert.match(sut.log, /DNS (BLOCKED|AUDIT)[^\n]* cmd=[^\n]*--password=\[REDACTED\] \[REDACTED\]/, 'the block log line shows the redacted command');
      // The unix guard's refusals (nscd socket) of the same process go through the same records.
      for (const l of sut.log.split('\n').filter((x) => x.includes('dst=unix:'))) assert.match(l, /\[REDACTED\]/);
      for (const secret of SECRETS) assert.ok(!sut.log.includes(secret), `the agent's log holds ${secret}`);
    });

    it('an ordinary command line is left as it is and not marked', async () => {
      const r = await sut.run([...LOOKUP, 'git', 'push', 'origin', 'main', 'https://example.com/a?b=c']);
      assert.equal(r.code, 0, r.stderr);
      const pid = Number(/pid=(\d+)/.exec(r.stdout)?.[1]);
      const e = await sut.waitForEvent('the block of the ordinary process', (x) => x.qname === 'github.com' && x.pid === pid);
      assert.equal(e.cmdlineRedacted, false);
      assert.match(e.cmdline ?? '', / git push origin main https:\/\/example\.com\/a\?b=c$/);
    });
  });
}

describe('cgfence agent --redact-pattern', () => {
  it('a bad pattern is a usage error (exit 2) naming it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cgfence-redact-e2e-'));
    try {
      writeFileSync(join(dir, 'policy.txt'), 'github.com\n');
      for (const [pattern, why] of [
        ['(unclosed', /not a valid regular expression/],
        ['(a+)+$', /catastrophic/],
        ['x*', /empty string/],
      ] as const) {
        const r = await exec(process.execPath, [CGFENCE, 'agent', '--policy-file', join(dir, 'policy.txt'), '--upstream', '127.0.0.1:1', '--state-dir', join(dir, 'state'), '--cgroup', 'cgf-e2e-never', '--redact-pattern', 'ok-[0-9]+', '--redact-pattern', pattern]);
        assert.equal(r.code, 2, `${pattern}: ${r.stdout}${r.stderr}`);
        assert.ok(r.stderr.includes(JSON.stringify(pattern)), r.stderr);
        assert.match(r.stderr, why);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

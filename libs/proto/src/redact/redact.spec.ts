import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BlockEventSchema } from '../events';
import { CommandRedactor, compileRedactPatterns, MAX_REDACT_PATTERNS, REDACTED, RedactPatternError, redactSecrets } from './index';

const R = REDACTED;
const redact = (s: string): string => redactSecrets(s).text;

describe(redactSecrets.name, () => {
  const ghp = `ghp_${'a1B2c3D4e5'.repeat(4)}`;

  it('takes out GitHub tokens of every prefix and fine-grained PATs', () => {
    for (const p of ['ghp_', 'gho_', 'ghs_', 'ghu_', 'ghr_']) {
      assert.equal(redact(`git clone https://x-access:${p}${'Z9'.repeat(18)}@github.com/o/r`), `git clone https://x-access:${R}@github.com/o/r`);
      assert.equal(redact(`echo ${p}${'Z9'.repeat(18)} | gh auth login`), `echo ${R} | gh auth login`);
    }
    assert.equal(redact(`gh api --hostname x github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz`), `gh api --hostname x ${R}`);
    assert.equal(redact(`git clone https://${ghp}@github.com/o/r`), `git clone https://${R}@github.com/o/r`);
  });

  it('takes out GitLab, AWS, Slack tokens and JWTs', () => {
    assert.equal(redact('glab x glpat-AbCdEfGhIjKlMnOpQrSt12'), `glab x ${R}`);
    assert.equal(redact('aws s3 ls --profile AKIAIOSFODNN7EXAMPLE'), `aws s3 ls --profile ${R}`);
    assert.equal(redact('env aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY aws s3 ls'), `env aws_secret_access_key=${R} aws s3 ls`);
    assert.equal(redact('env AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG aws s3 ls'), `env AWS_SECRET_ACCESS_KEY=${R} aws s3 ls`);
    assert.equal(redact('notify xoxb-1234567890-abcdefghij'), `notify ${R}`);
    assert.equal(redact('notify xoxp-1234567890-abcdefghij'), `notify ${R}`);
    const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U';
    assert.equal(redact(`deploy --id-token-file x ${jwt} end`), `deploy --id-token-file x ${R} end`);
  });

  it('takes out Authorization, Bearer and token header values', () => {
    assert.equal(redact(`curl -H Authorization: token ${ghp} https://api.github.com`), `curl -H Authorization: token ${R} https://api.github.com`);
    assert.equal(redact('curl -H Authorization: Bearer abc.def-ghi https://x'), `curl -H Authorization: Bearer ${R} https://x`);
    assert.equal(redact('curl -H authorization:Basic dXNlcjpwYXNz https://x'), `curl -H authorization:Basic ${R} https://x`);
    assert.equal(redact('curl -H "Authorization: opaque123" x'), `curl -H "Authorization: ${R}" x`);
    assert.equal(redact('curl -H PRIVATE-TOKEN: s3cr3t x'), `curl -H PRIVATE-TOKEN: ${R} x`);
    assert.equal(redact('wget --header=Bearer abc123 x'), `wget --header=Bearer ${R} x`);
  });

  it('takes out --password/--token/--secret/--api-key values, = and separate', () => {
    assert.equal(redact('mysql --password=hunter2 -h db'), `mysql --password=${R} -h db`);
    assert.equal(redact('deploy --token abc --region eu'), `deploy --token ${R} --region eu`);
    assert.equal(redact('deploy --secret x1 --api-key y2 --api_key z3 --apikey w4'), `deploy --secret ${R} --api-key ${R} --api_key ${R} --apikey ${R}`);
    assert.equal(redact('tool --db-password p --client-secret q'), `tool --db-password ${R} --client-secret ${R}`);
    assert.equal(redact('env DB_PASSWORD=x API_KEY=y make'), `env DB_PASSWORD=${R} API_KEY=${R} make`);
    // A following option is not the value; options that only contain the word are not secrets.
    assert.equal(redact('docker login --password-stdin --username bob'), 'docker login --password-stdin --username bob');
    assert.equal(redact('tool --token --verbose'), 'tool --token --verbose');
    assert.equal(redact('ftp --passive host'), 'ftp --passive host');
  });

  it('takes the password out of URL credentials and keeps the user', () => {
    assert.equal(redact('git clone https://bob:pw@git.example/repo'), `git clone https://bob:${R}@git.example/repo`);
    assert.equal(redact('psql postgres://app:p@ss:w0rd@db:5432/app'), `psql postgres://app:${R}@db:5432/app`);
    assert.equal(redact('curl https://x.example/cb?access_token=abc&b=c'), `curl https://x.example/cb?access_token=${R}&b=c`);
  });

  it('takes out password options whose meaning depends on the program', () => {
    assert.equal(redact('mysql -u deploy -pS3cr3t! app'), `mysql -u deploy -p${R} app`);
    assert.equal(redact('/usr/bin/mysqldump -h db -pS3cr3t app'), `/usr/bin/mysqldump -h db -p${R} app`);
    assert.equal(redact('mariadb-dump -pS3cr3t app'), `mariadb-dump -p${R} app`);
    assert.equal(redact('sshpass -p hunter2 ssh deploy@h'), `sshpass -p ${R} ssh deploy@h`);
    assert.equal(redact('sshpass -phunter2 rsync a b'), `sshpass -p${R} rsync a b`);
    assert.equal(redact('redis-cli -h cache -a hunter2 ping'), `redis-cli -h cache -a ${R} ping`);
    assert.equal(redact('docker login -u ci -p hunter2 registry.example'), `docker login -u ci -p ${R} registry.example`);
    assert.equal(redact('curl -u ci:hunter2 https://x.example'), `curl -u ci:${R} https://x.example`);
    assert.equal(redact('curl -uci:hunter2 https://x.example'), `curl -uci:${R} https://x.example`);
    assert.equal(redact('curl --user=ci:hunter2 https://x.example'), `curl --user=ci:${R} https://x.example`);
    assert.equal(redact('curl --proxy-user ci:hunter2 https://x.example'), `curl --proxy-user ci:${R} https://x.example`);
    // Through a shell: the words after `-c` carry the program.
    assert.equal(redact(`sh -c "mysql -pS3cr3t app"`), `sh -c "mysql -p${R} app"`);
    assert.equal(redact('bash -c mysql -pS3cr3t app'), `bash -c mysql -p${R} app`);
  });

  it('leaves the same flags alone for other programs, or where they are not secrets', () => {
    for (const cmd of [
      'ssh -p 2222 deploy@host.example uptime',
      'mkdir -p /srv/app/releases',
      'cp -p a b',
      'docker run -p 8080:80 -u 1000:1000 app',
      'mysql -p app',
      'curl -u ci https://x.example',
      'curl -u 1000:1000 https://x.example',
      'mysql --version; mkdir -p /tmp/x',
      'sshpass -f pw.txt ssh deploy@h; ssh -p 22 h',
      'sshpass -f pw.txt ssh -p 2222 deploy@h',
      'mysql -e status|mkdir -p /tmp/x',
    ]) {
      assert.deepEqual(redactSecrets(cmd), { text: cmd, redacted: false }, cmd);
    }
  });

  it('leaves ordinary commands alone and says nothing was redacted', () => {
    for (const cmd of [
      'git push origin main',
      'curl https://example.com/a?b=c',
      'curl -fsSL https://github.com/org/repo/releases/download/v1.2.3/tool.tar.gz',
      'ssh deploy@host.example uptime',
      'git checkout 3f786850e387550fdab836ed7e6dc881de23001b',
      'kubectl --context prod apply -f deploy.yaml',
      'npm ci --no-audit',
      'sh -c getent hosts github.com',
      'echo token count',
    ]) {
      assert.deepEqual(redactSecrets(cmd), { text: cmd, redacted: false }, cmd);
    }
  });

  it('says when something was redacted', () => {
    assert.deepEqual(redactSecrets('x --password=a'), { text: `x --password=${R}`, redacted: true });
  });

  it('applies extra patterns, whole match', () => {
    const extra = compileRedactPatterns(['corp-[0-9]{6}', 'vault:[a-z]+']);
    assert.equal(redactSecrets('deploy corp-123456 vault:abc x', extra).text, `deploy ${R} ${R} x`);
  });

  it('is linear on hostile input at the cut length', () => {
    for (const hostile of ['mysql -p'.repeat(1000), 'curl -u '.repeat(1000), 'sshpass '.repeat(1000), '--a_'.repeat(2000), 'a_'.repeat(4000), `https://${'a:'.repeat(2000)}`, `eyJ${'a'.repeat(4000)}.`, `Authorization: ${' '.repeat(4000)}`]) {
      const t = process.hrtime.bigint();
      redactSecrets(hostile);
      // Not a timing target: a backtracking blow-up takes seconds to hours, not this.
      assert.ok(process.hrtime.bigint() - t < 2_000_000_000n, hostile.slice(0, 20));
    }
  });
});

describe(compileRedactPatterns.name, () => {
  it('refuses a bad regex, naming it', () => {
    assert.throws(() => compileRedactPatterns(['ok', '(unclosed']), (e: Error) => e instanceof RedactPatternError && e.message.includes('"(unclosed"'));
  });
  it('refuses a pattern that matches the empty string', () => {
    assert.throws(() => compileRedactPatterns(['a*']), /matches the empty string/);
  });
  it('refuses nested quantifiers (catastrophic backtracking)', () => {
    for (const p of ['(a+)+b', '(x*)*', '(?:ab+){2,}c', '([a-z]+_)*z']) assert.throws(() => compileRedactPatterns([p]), /catastrophic/, p);
  });
  it('bounds the count and the length', () => {
    assert.throws(() => compileRedactPatterns(Array.from({ length: MAX_REDACT_PATTERNS + 1 }, (_, i) => `p${i}`)), /at most 16/);
    assert.throws(() => compileRedactPatterns(['x'.repeat(300)]), /longer than 256/);
    assert.equal(compileRedactPatterns(Array.from({ length: MAX_REDACT_PATTERNS }, (_, i) => `p${i}`)).length, MAX_REDACT_PATTERNS);
  });
});

describe(CommandRedactor.name, () => {
  it('gives the same result from its cache', () => {
    const r = new CommandRedactor();
    const a = r.redact('x --token=abc');
    assert.deepEqual(r.redact('x --token=abc'), a);
    assert.equal(a.text, `x --token=${R}`);
  });
});

describe('BlockEventSchema.cmdlineRedacted', () => {
  const base = {
    id: '0190c2d3-0000-7000-8000-000000000001', time: '2026-04-16T10:00:00.000Z', host: 'h', cohort: null, runId: null, labels: {},
    pid: 1, comm: 'curl', cmdline: `curl --token ${REDACTED}`, uid: 0, cgroupId: '1', qname: 'github.com', qtype: 'A', entry: 'github.com',
    action: 'blocked', method: 'dns', policyVersion: null, policyHash: null, destination: null, message: null,
  };
  it('carries the flag, and accepts events of older agents without it', () => {
    assert.equal(BlockEventSchema.parse({ ...base, cmdlineRedacted: true }).cmdlineRedacted, true);
    assert.equal(BlockEventSchema.parse(base).cmdlineRedacted, undefined);
    assert.equal(BlockEventSchema.safeParse({ ...base, cmdlineRedacted: 'yes' }).success, false);
  });
});

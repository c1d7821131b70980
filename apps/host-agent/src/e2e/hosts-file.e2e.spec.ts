// Issue 13, "the hosts file" and "DNS on other ports", as a user of
// `cgfence agent` sees them: a listed name with an entry in the hosts file
// resolves from the file (no DNS) but the connection is refused and journaled
// (method ip); a run's connect to port 853 (DoT) is refused. Real kernel, real
// agent; the hosts file is a temp file bind-mounted over /etc/hosts in the
// run's own mount namespace (the machine's /etc/hosts is never touched).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@cgfence/devservices';
import { AgentUnderTest, isAddressRecord } from './agent-harness';

const EPERM = constants.errno.EPERM;

/** getaddrinfo(argv[1]) then a TCP connect to its first IPv4 address on argv[2]; prints {pid, addr, result}. */
const RESOLVE_CONNECT = `
import json, os, socket, sys, time
out = {"pid": os.getpid()}
try:
    addr = socket.getaddrinfo(sys.argv[1], 80, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    out["addr"] = addr
    s = socket.socket(); s.settimeout(2)
    out["result"] = s.connect_ex((addr, int(sys.argv[2])))
except socket.gaierror as e:
    out["error"] = str(e)
print(json.dumps(out)); sys.stdout.flush(); time.sleep(1)
`;

interface Resolved {
  pid: number;
  addr?: string;
  result?: number;
  error?: string;
}

describe(`${AgentUnderTest.name}: the hosts file and DNS on other ports`, () => {
  let sut: AgentUnderTest;
  let dir: string;
  let hosts: string;
  let port: number;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cgfence-hosts-'));
    hosts = join(dir, 'hosts');
    writeFileSync(hosts, '127.0.0.1 localhost\n127.0.0.19 pinned.example pinned\n127.0.0.21 allowed.example\n');
    sut = await AgentUnderTest.start({ policy: 'pinned.example\n*.listed.example\n', extraArgs: ['--hosts-file', hosts] });
    port = await freePort();
  });
  after(async () => {
    await sut?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const resolveAndConnect = async (name: string): Promise<Resolved> => {
    const r = await sut.run(['unshare', '-m', 'sh', '-c', 'mount --bind "$0" /etc/hosts && exec "$@"', hosts, 'python3', '-c', RESOLVE_CONNECT, name, String(port)]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Resolved;
  };

  it('resolves a listed name from the hosts file but refuses the connection, journaled with method ip; an alert names the line', async () => {
    const out = await resolveAndConnect('pinned.example');
    assert.equal(out.addr, '127.0.0.19', 'the name resolves from the file');
    assert.equal(out.result, EPERM);
    const e = await sut.waitForEvent('the block of the hosts-file address', (x) => isAddressRecord(x) && x.pid === out.pid);
    assert.equal(e.action, 'blocked');
    assert.equal(e.destination, `127.0.0.19:${port}`);
    const alert = sut.events().find((x) => x.action === 'alert' && /line 2 maps listed name pinned\.example/.test(x.message ?? ''));
    assert.ok(alert, `an alert names the hosts file line: ${JSON.stringify(sut.events().filter((x) => x.action === 'alert'))}`);
  });

  it('leaves an unlisted name of the hosts file alone', async () => {
    const out = await resolveAndConnect('allowed.example');
    assert.equal(out.addr, '127.0.0.21');
    assert.equal(out.result, constants.errno.ECONNREFUSED);
  });

  it('blocks a listed name added to the hosts file while the agent runs', async () => {
    appendFileSync(hosts, '127.0.0.23 api.listed.example\n');
    let out: Resolved | undefined;
    for (let i = 0; i < 40; i++) {
      out = await resolveAndConnect('api.listed.example');
      if (out.result === EPERM) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.equal(out?.addr, '127.0.0.23');
    assert.equal(out?.result, EPERM, 'refused once the agent read the changed file');
  });

  it("refuses a run's TCP connect to port 853 (DoT) with EPERM", async () => {
    const r = await sut.run(['python3', '-c', 'import socket; s = socket.socket(); s.settimeout(2); print(s.connect_ex(("127.0.0.1", 853)))']);
    assert.equal(Number(r.stdout.trim()), EPERM, r.stderr);
    const st = JSON.parse((await sut.cli(['agent', 'status', '--json'])).stdout) as { counters: Record<string, string> };
    assert.equal(st.counters['kernel_dns_port_853_refused'], '1', `status counts the refusal: ${JSON.stringify(st.counters)}`);
  });
});

describe(`${AgentUnderTest.name}: the hosts file and DNS on other ports, audit mode`, () => {
  let sut: AgentUnderTest;
  let dir: string;
  let hosts: string;
  let port: number;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cgfence-hosts-audit-'));
    hosts = join(dir, 'hosts');
    writeFileSync(hosts, '127.0.0.29 pinned.example\n');
    sut = await AgentUnderTest.start({ policy: 'pinned.example\n', mode: 'audit', extraArgs: ['--hosts-file', hosts] });
    port = await freePort();
  });
  after(async () => {
    await sut?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lets the connection to the hosts-file address through and journals it as audited', async () => {
    const r = await sut.run(['unshare', '-m', 'sh', '-c', 'mount --bind "$0" /etc/hosts && exec "$@"', hosts, 'python3', '-c', RESOLVE_CONNECT, 'pinned.example', String(port)]);
    const out = JSON.parse(r.stdout) as Resolved;
    assert.equal(out.addr, '127.0.0.29');
    assert.equal(out.result, constants.errno.ECONNREFUSED, 'reached the address (nothing listens)');
    const e = await sut.waitForEvent('the audit event of the hosts-file address', (x) => isAddressRecord(x) && x.pid === out.pid);
    assert.equal(e.action, 'audited');
    assert.equal(e.destination, `127.0.0.29:${port}`);
  });

  it('lets a connect to port 853 through and journals it as audited', async () => {
    const r = await sut.run(['python3', '-c', 'import os, socket, time; s = socket.socket(); s.settimeout(2); print(os.getpid(), s.connect_ex(("127.0.0.1", 853))); time.sleep(1)']);
    const [pid, rc] = r.stdout.trim().split(' ').map(Number);
    assert.equal(rc, constants.errno.ECONNREFUSED, r.stderr);
    const e = await sut.waitForEvent('the audit event of port 853', (x) => isAddressRecord(x) && x.pid === pid);
    assert.equal(e.action, 'audited');
    assert.equal(e.destination, '127.0.0.1:853');
  });
});

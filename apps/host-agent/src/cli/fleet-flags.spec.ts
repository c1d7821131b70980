// `cgfence agent` fleet-mode flags: what is refused before anything starts,
// and the fleet section of `cgfence agent status`.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FleetAgentStatus } from '@cgfence/proto';
import { signingKey } from '../fleet/testing/fleet-fixtures';
import { buildHostProgram, fleetLines } from './main';

async function refused(args: string[]): Promise<string> {
  const program = buildHostProgram();
  program.configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  try {
    await program.parseAsync(['node', 'cgfence', 'agent', ...args]);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error(`not refused: ${args.join(' ')}`);
}

describe('cgfence agent fleet flags', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cgfence-flags-'));
  const keyFile = join(dir, 'server.pem');
  writeFileSync(keyFile, signingKey().pem);
  const seed = join(dir, 'bad.nk');
  writeFileSync(seed, 'not a seed\n');

  it('refuses --policy-file together with --server, and neither', async () => {
    assert.match(await refused(['--policy-file', '/etc/hosts', '--server', 'nats://127.0.0.1:4222', '--server-key', keyFile]), /--policy-file and --server exclude each other/);
    assert.match(await refused([]), /give --policy-file FILE .* or --server nats:\/\/HOST:PORT/);
  });

  it('needs the server key with --server, and --server for the fleet flags', async () => {
    assert.match(await refused(['--server', 'nats://127.0.0.1:4222']), /--server needs --server-key FILE/);
    assert.match(await refused(['--policy-file', '/etc/hosts', '--nats-seed', seed]), /--nats-seed needs --server/);
    assert.match(await refused(['--policy-file', '/etc/hosts', '--label', 'a=b']), /--label needs --server/);
  });

  it('names a bad URL, key file, host id, seed or label', async () => {
    const fleet = ['--server', 'nats://127.0.0.1:4222', '--server-key', keyFile, '--host-id', 'h1'];
    assert.match(await refused(['--server', 'http://x:1', '--server-key', keyFile, '--host-id', 'h1']), /expected nats:\/\/HOST:PORT/);
    assert.match(await refused(['--server', 'nats://x:1', '--server-key', seed, '--host-id', 'h1']), /--server-key .*: no "BEGIN PUBLIC KEY" block/);
    assert.match(await refused(['--server', 'nats://x:1', '--server-key', keyFile, '--host-id', 'Host.1']), /--host-id: host id "Host.1" must be/);
    assert.match(await refused([...fleet, '--nats-seed', seed]), /--nats-seed: .* does not hold an nkey user seed/);
    assert.match(await refused([...fleet, '--label', 'cohort=a', '--cohort', 'b']), /--cohort b contradicts the label cohort=a/);
  });

  it('reads cgroups to protect from the labels file and refuses bad ones, naming the flag; refuses an unknown --run-group', async () => {
    const labels = join(dir, 'labels');
    writeFileSync(labels, 'cohort=canary\ncgfence.protect-cgroups=system.slice/deployd.service,../etc\n');
    const fleet = ['--server', 'nats://127.0.0.1:4222', '--server-key', keyFile, '--host-id', 'h1', '--labels-file', labels];
    assert.match(await refused(fleet), /--protect-cgroup \.\.\/etc: "\.\." is not allowed/);
    assert.match(await refused(['--policy-file', '/etc/hosts', '--protect-cgroup', '/']), /--protect-cgroup \/: the cgroup root itself cannot be protected/);
    assert.match(await refused(['--policy-file', '/etc/hosts', '--run-group', 'cgfence-no-such-group-x']), /--run-group cgfence-no-such-group-x: no such group/);
    assert.match(await refused(['--policy-file', '/etc/hosts', '--run-group', 'root']), /--run-group root: the root group/);
  });

  it('cleans up', () => rmSync(dir, { recursive: true, force: true }));
});

describe(fleetLines.name, () => {
  const base: FleetAgentStatus = {
    server: 'nats://policy:4222',
    connected: true,
    hostId: 'web-1',
    labels: { cohort: 'canary', role: 'web' },
    seenRevision: 12,
    applied: { revision: 12, blocklistId: 'bl-1', name: 'prod-deny', version: 4, hash: 'sha256:ab', appliedAt: '2026-01-01T00:00:00.000Z' },
    target: 'baseline',
    auditOverride: false,
    lastError: null,
    drift: { drifted: false, checkedAt: '2026-01-01T00:00:10.000Z' },
    lastSync: { at: '2026-01-01T00:00:20.000Z', ok: true, revision: 12 },
    boot: 'no last-good bundle: started with an empty policy',
  };

  it('shows server, host, labels, revision, applied bundle, drift and sync', () => {
    assert.deepEqual(fleetLines(base), [
      'fleet:',
      '  server:   nats://policy:4222 (connected)',
      '  host id:  web-1; labels: cohort=canary role=web',
      '  revision: 12; target: baseline',
      '  applied:  prod-deny v4 sha256:ab (blocklist bl-1, revision 12, at 2026-01-01T00:00:00.000Z)',
      '  boot:     no last-good bundle: started with an empty policy',
      '  drift:    none (checked 2026-01-01T00:00:10.000Z)',
      '  sync:     2026-01-01T00:00:20.000Z ok (server at revision 12)',
    ]);
  });

  it('shouts about what needs attention', () => {
    const lines = fleetLines({
      ...base,
      connected: false,
      auditOverride: true,
      applied: null,
      lastError: { revision: 13, reason: 'older-version', message: 'bundle prod-deny v3 is older', at: '2026-01-01T00:01:00.000Z' },
      drift: { drifted: true, detail: 'kernel holds 1 v4 ranges, applied 2', checkedAt: '2026-01-01T00:01:10.000Z' },
      lastSync: { at: '2026-01-01T00:01:20.000Z', ok: false, error: 'timeout' },
    }).join('\n');
    assert.match(lines, /\(NOT CONNECTED\)/);
    assert.match(lines, /AUDIT ordered by the server/);
    assert.match(lines, /applied: {2}nothing \(empty policy\)/);
    assert.match(lines, /LAST UPDATE REJECTED \(revision 13\) at 2026-01-01T00:01:00.000Z: older-version: bundle prod-deny v3 is older/);
    assert.match(lines, /DRIFTED: kernel holds 1 v4 ranges, applied 2/);
    assert.match(lines, /FAILED: timeout/);
  });
});

describe('cgfence agent --refused-dns-ports', () => {
  it('refuses port 53, out-of-range ports, junk and more than 16 ports, naming the flag', async () => {
    assert.match(await refused(['--policy-file', '/etc/hosts', '--refused-dns-ports', '53']), /--refused-dns-ports: port 53 cannot be a refused DNS port/);
    assert.match(await refused(['--policy-file', '/etc/hosts', '--refused-dns-ports', '853,70000']), /--refused-dns-ports: .*1\.\.65535, got 70000/);
    assert.match(await refused(['--policy-file', '/etc/hosts', '--refused-dns-ports', 'dot']), /--refused-dns-ports: .*got NaN/);
    const many = Array.from({ length: 17 }, (_, i) => 2000 + i).join(',');
    assert.match(await refused(['--policy-file', '/etc/hosts', '--refused-dns-ports', many]), /at most 16 refused DNS ports/);
  });
});

// Real nats-server and real kernel: the FleetClient driving a real Agent
// (eBPF data plane on a throwaway deploy cgroup, DNS proxy, journal). A
// bundle from the stand-in policy server lands in the kernel's maps and the
// proxy, the audit override reaches the kernel's config, drift behind the
// agent's back is reported, and a restarted agent enforces its last good
// bundle before it hears from the server.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { ensureBpffs } from '@cgfence/bpf';
import { NatsServer, waitFor } from '@cgfence/devservices';
import type { INestApplicationContext } from '@nestjs/common';
import { AgentConfig, pinDirFor } from '../agent/agent-config';
import { startAgentApp } from '../app/agent-app';
import { AgentStatusService } from '../control/agent-status.service';
import { teardown } from '../cli/teardown';
import { JournalReader } from '../journal/event-journal';
import { MetricsService } from '../metrics/metrics.service';
import { DriftService } from './drift.service';
import { FleetClient } from './fleet-client';
import { FleetLinkService } from './fleet-link.service';
import { makeBundle, makeDesired, makeMessage, quietLogger, ringOf, signingKey, StandInServer } from './testing/fleet-fixtures';

const key = signingKey();

/** The mode byte of the pinned cgf_config (struct cgf_config.mode, offset 2): 0 enforce, 1 audit. */
function kernelMode(pinDir: string): 'enforce' | 'audit' {
  const out = JSON.parse(execFileSync('bpftool', ['-j', 'map', 'lookup', 'pinned', join(pinDir, 'maps', 'cgf_config'), 'key', '0', '0', '0', '0'], { encoding: 'utf8' })) as {
    value: string[];
  };
  return Number(out.value[2]) === 1 ? 'audit' : 'enforce';
}

function innerMapId(pinDir: string, outer: string): number {
  const out = JSON.parse(execFileSync('bpftool', ['-j', 'map', 'lookup', 'pinned', join(pinDir, 'maps', outer), 'key', '0', '0', '0', '0'], { encoding: 'utf8' })) as {
    value: number | string[];
  };
  return typeof out.value === 'number' ? out.value : Buffer.from(out.value.map(Number)).readUInt32LE(0);
}

describe('Agent in fleet mode', () => {
  let dir: string;
  let nats: NatsServer;
  let server: StandInServer;
  const cgroupName = `cgf-fleet-int-${randomBytes(3).toString('hex')}`;
  let stateDir: string;
  let app: INestApplicationContext | undefined;

  /** The agent as the tests see it: status, drift check. */
  interface AgentView {
    status(): ReturnType<AgentStatusService['status']>;
    checkDrift(): ReturnType<DriftService['check']>;
  }

  const config = (): AgentConfig => ({
    upstream: '127.0.0.1:9', // never queried here
    mode: 'enforce',
    failMode: 'open',
    cgroupName,
    stateDir,
    proxyPort: 0,
    host: 'fleet-int',
    cohort: 'canary',
    fleetServer: nats.url(),
    driftCheckMs: 0, // the test calls checkDrift() itself
    limits: {},
    heartbeatTimeoutMs: 0,
    upstreamTimeoutMs: 1000,
    logLevel: 'silent',
  });

  /** The agent's fleet composition, booted as `cgfence agent --server` boots it. */
  async function boot(): Promise<{ agent: AgentView; fleet: FleetClient }> {
    const a = await startAgentApp(config(), quietLogger, {
      fleet: { servers: [nats.url()], hostId: 'kernel-1', labels: { cohort: 'canary' }, ring: ringOf(key), reportIntervalMs: 200, reconnectWaitMs: 100 },
    });
    app = a;
    const status = a.get(AgentStatusService);
    const drift = a.get(DriftService);
    return { agent: { status: () => status.status(), checkDrift: () => drift.check() }, fleet: a.get(FleetLinkService).client };
  }

  async function shutdown(): Promise<void> {
    await app?.close();
    app = undefined;
  }

  const view = (): { agent: AgentView } => ({
    agent: { status: () => app!.get(AgentStatusService).status(), checkDrift: () => app!.get(DriftService).check() },
  });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cgfence-fleet-agent-int-'));
    stateDir = join(dir, 'state');
    nats = await NatsServer.start({ dir: join(dir, 'nats') });
    server = new StandInServer(await connect({ servers: nats.url() }));
  });

  after(async () => {
    await shutdown();
    await server?.close();
    await nats?.stop();
    if (dir) {
      teardown(cgroupName, stateDir);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const v1 = makeBundle(key, { text: 'evil.example\n*.tracker.example\n10.66.0.0/16\n192.0.2.7/32\n2001:db8:66::/48\n', version: 1 });
  const v2 = makeBundle(key, { text: 'evil.example\n10.66.0.0/16\n10.67.0.0/16\n', version: 2 });

  it('starts empty, applies a broadcast bundle into the kernel and the proxy, and says so in status', async () => {
    const { agent: a, fleet: f } = await boot();
    assert.equal(a.status().policy.version, 'none');
    assert.match(a.status().fleet!.boot, /no last-good bundle/);
    await waitFor('register', async () => server.registers.some((r) => r.data.hostId === 'kernel-1'));

    const d = makeDesired(key, { revision: 1, baseline: v1 });
    await server.broadcast(makeMessage(d.signed, [v1]), 1, [v1]);
    await waitFor('the bundle in force', async () => a.status().policy.version === 'prod-deny v1');

    const s = a.status();
    assert.equal(s.policy.hash, v1.header.hash);
    assert.deepEqual([s.policy.domains, s.policy.wildcards, s.policy.cidr4, s.policy.cidr6], [1, 1, 2, 1]);
    assert.match(s.policy.source, /^fleet nats:\/\//);
    assert.equal(s.fleet?.applied?.version, 1);
    assert.equal(s.fleet?.hostId, 'kernel-1');
    assert.deepEqual(a.checkDrift(), { drifted: false, checkedAt: a.status().fleet!.drift!.checkedAt });
    assert.equal(kernelMode(pinDirFor(ensureBpffs(), cgroupName)), 'enforce');
    assert.equal(f.status().seenRevision, 1);
  });

  it('puts the kernel and the proxy in audit when the server says so, and back', async () => {
    const { agent: a } = view();
    const pinDir = pinDirFor(ensureBpffs(), cgroupName);
    const audit = makeDesired(key, { revision: 2, baseline: v1, audit: { cohorts: ['canary'] } });
    await server.broadcast(makeMessage(audit.signed, [v1]), 2, [v1]);
    await waitFor('audit mode', async () => a.status().mode === 'audit');
    assert.equal(kernelMode(pinDir), 'audit');
    await waitFor('a report in audit', async () => server.lastReport()?.mode === 'audit');

    const enforce = makeDesired(key, { revision: 3, baseline: v2 });
    await server.broadcast(makeMessage(enforce.signed, [v2]), 3, [v2]);
    await waitFor('v2 enforced', async () => a.status().policy.version === 'prod-deny v2' && a.status().mode === 'enforce');
    assert.equal(kernelMode(pinDir), 'enforce');
  });

  it('reports drift when an entry disappears from the kernel behind its back', async () => {
    const { agent: a } = view();
    const pinDir = pinDirFor(ensureBpffs(), cgroupName);
    // 10.67.0.0/16 as an LPM key: prefixlen 16 (LE), then the address.
    execFileSync('bpftool', ['map', 'delete', 'id', String(innerMapId(pinDir, 'cgf_block4')), 'key', 'hex', '10', '00', '00', '00', '0a', '43', '00', '00']);

    const drift = a.checkDrift();
    assert.equal(drift?.drifted, true);
    assert.equal(drift?.detail, 'kernel holds 1 v4 ranges, applied 2');
    await waitFor('the drift in a report', async () => server.lastReport()?.drift?.drifted === true);
    const alert = new JournalReader(stateDir).list().find((r) => r.action === 'alert' && r.message?.includes('IP policy drift'));
    assert.ok(alert, 'an alert in the journal');
    assert.equal(alert.policyVersion, 'prod-deny v2');
  });

  it('restarts enforcing its last good bundle before it hears from the server', async () => {
    await shutdown();
    await server.close();
    server = undefined as unknown as StandInServer; // the policy server stays away
    const { agent: a } = await boot();

    const s = a.status();
    assert.equal(s.policy.version, 'prod-deny v2', 'enforced from the first moment');
    assert.equal(s.policy.hash, v2.header.hash);
    assert.match(s.fleet!.boot, /^restored last-good prod-deny v2 \(revision 3/);
    assert.equal(s.fleet!.seenRevision, 3);
    assert.deepEqual(a.checkDrift()?.drifted, false, 'the restart rewrote the kernel maps');
    server = new StandInServer(await connect({ servers: nats.url() }));
  });

  it('keeps its fleet link through a nats-server restart: the metrics show the gap, the next broadcast is applied', async () => {
    const metrics = app!.get(MetricsService);
    const linked = async (up: 0 | 1) => new RegExp(`^cgfence_agent_fleet_connected ${up}$`, 'm').test(await metrics.scrape());
    await waitFor('the link up', () => linked(1));
    await nats.stop();
    await waitFor('the link down in the metrics', () => linked(0), 10_000);
    assert.equal(view().agent.status().policy.version, 'prod-deny v2', 'the last good policy stays in force meanwhile');
    await nats.restart();
    await waitFor('the link up again in the metrics', () => linked(1), 20_000);
    // The stand-in policy server's own connection comes back on its own schedule.
    await waitFor('the stand-in server back on NATS', async () => {
      await server.nc.flush();
      return true;
    }, 20_000);

    const v3 = makeBundle(key, { text: 'evil.example\nafter-restart.example\n10.68.0.0/16\n', version: 3 });
    const d = makeDesired(key, { revision: 4, baseline: v3 });
    await server.broadcast(makeMessage(d.signed, [v3]), 4, [v3]);
    await waitFor('v3 applied from the broadcast after the restart', async () => view().agent.status().policy.version === 'prod-deny v3', 15_000);
    assert.match(await metrics.scrape(), /^cgfence_agent_fleet_revision\{which="applied"\} 4$/m);
  });
});

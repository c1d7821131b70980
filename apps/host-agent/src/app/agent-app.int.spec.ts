// The agent's Nest application on the real kernel: both compositions boot
// their module graphs (standalone: policy file; fleet: policy server over a
// real nats-server), and a stop leaves what an agent stop always left: the
// deploy cgroup and the pinned programs and maps (IP enforcement outlives
// the agent), no pid file, no control socket, nothing listening.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { INestApplicationContext } from '@nestjs/common';
import { ensureBpffs, findCgroup2Root } from '@cgfence/bpf';
import { CONTROL_SOCKET } from '@cgfence/proto';
import { NatsServer } from '@cgfence/devservices';
import { AgentConfig, PID_FILE, pinDirFor } from '../agent/agent-config';
import { teardown } from '../cli/teardown';
import { AgentStatusService } from '../control/agent-status.service';
import { ControlService } from '../control/control.service';
import { DataPlaneService } from '../data-plane/data-plane.service';
import { ProxyHeartbeat } from '../data-plane/proxy-heartbeat.service';
import { DnsProxyService } from '../dns/dns-proxy.service';
import { EventShippingService } from '../events/event-shipping.service';
import { DriftService } from '../fleet/drift.service';
import { FleetLinkService } from '../fleet/fleet-link.service';
import { FleetPolicySource } from '../fleet/fleet-policy.source';
import { quietLogger, ringOf, signingKey } from '../fleet/testing/fleet-fixtures';
import { JournalService } from '../journal/journal.service';
import { MetricsServer } from '../metrics/metrics-server.service';
import { MetricsService } from '../metrics/metrics.service';
import { PolicyFileSource } from '../policy/policy-file.source';
import { PolicySource } from '../policy/policy-source';
import { PolicyService } from '../policy/policy.service';
import { RunsService } from '../runs/runs.service';
import { startAgentApp } from './agent-app';
import { DeployCgroup } from './deploy-cgroup.service';
import { StateDirLock } from './state-dir-lock.service';

/** Every module's services, as both compositions hold them. */
const COMMON = [StateDirLock, DeployCgroup, RunsService, JournalService, PolicyService, DnsProxyService, DataPlaneService, ProxyHeartbeat, AgentStatusService, ControlService, MetricsService, MetricsServer];
const FLEET_ONLY = [FleetLinkService, DriftService, FleetPolicySource, EventShippingService];

const has = (app: INestApplicationContext, token: Parameters<INestApplicationContext['get']>[0]): boolean => {
  try {
    app.get(token, { strict: false });
    return true;
  } catch {
    return false;
  }
};

/** True when something answers a DNS query on 127.0.0.1:port within 500 ms. */
function answersDns(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    const done = (v: boolean) => {
      clearTimeout(t);
      s.close();
      resolve(v);
    };
    const t = setTimeout(() => done(false), 500);
    s.on('message', () => done(true));
    s.on('error', () => done(false));
    // id 1, RD, one question: example.test A IN (the upstream is unreachable: SERVFAIL is an answer too)
    s.send(Buffer.from('000101000001000000000000076578616d706c65047465737400000100 01'.replace(/ /g, ''), 'hex'), port, '127.0.0.1');
  });
}

describe('the agent as a Nest application', () => {
  let dir: string;
  let nats: NatsServer;
  const cgroups: string[] = [];

  const config = (name: string, o: Partial<AgentConfig> = {}): AgentConfig => {
    cgroups.push(name);
    return {
      upstream: '127.0.0.1:9',
      mode: 'enforce',
      failMode: 'open',
      cgroupName: name,
      stateDir: join(dir, name),
      proxyPort: 0,
      host: 'graph-int',
      limits: {},
      heartbeatTimeoutMs: 0,
      upstreamTimeoutMs: 200,
      logLevel: 'silent',
      metricsListen: { host: '127.0.0.1', port: 0 },
      ...o,
    };
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cgfence-agent-app-int-'));
    nats = await NatsServer.start({ dir: join(dir, 'nats') });
  });

  after(async () => {
    await nats?.stop();
    for (const c of cgroups) teardown(c, join(dir, c));
    rmSync(dir, { recursive: true, force: true });
  });

  it('standalone: boots every module but the fleet ones, on the policy file', async () => {
    const name = `cgf-graph-${randomBytes(3).toString('hex')}`;
    const policyFile = join(dir, `${name}.txt`);
    writeFileSync(policyFile, 'evil.example\n10.66.0.0/16\n');
    const app = await startAgentApp(config(name, { policyFile }), quietLogger);
    try {
      for (const s of COMMON) assert.ok(has(app, s), `${s.name} is part of the standalone agent`);
      for (const s of FLEET_ONLY) assert.equal(has(app, s), false, `${s.name} is not part of the standalone agent`);
      assert.ok(app.get(PolicySource, { strict: false }) instanceof PolicyFileSource);
      const st = app.get(AgentStatusService).status();
      assert.match(st.policy.version, /^file:[0-9a-f]{12}$/);
      assert.equal(st.policy.source, policyFile);
      assert.deepEqual([st.policy.domains, st.policy.cidr4], [1, 1]);
      assert.ok(st.programs.length >= 7, `programs attached: ${st.programs.join(' ')}`);
      assert.equal(st.fleet, undefined);
      assert.equal(st.spool, undefined);
      assert.ok(await answersDns(st.proxy.port), 'the proxy answers');
    } finally {
      await app.close();
    }
  });

  it('fleet: boots the fleet link and event shipping too, with the policy from the server', async () => {
    const name = `cgf-graph-${randomBytes(3).toString('hex')}`;
    const app = await startAgentApp(config(name, { fleetServer: nats.url(), driftCheckMs: 0 }), quietLogger, {
      fleet: { servers: [nats.url()], hostId: 'graph-1', labels: { cohort: 'canary' }, ring: ringOf(signingKey()), reconnectWaitMs: 100 },
    });
    try {
      for (const s of [...COMMON, ...FLEET_ONLY]) assert.ok(has(app, s), `${s.name} is part of the fleet agent`);
      assert.equal(has(app, PolicyFileSource), false);
      assert.ok(app.get(PolicySource, { strict: false }) instanceof FleetPolicySource);
      const st = app.get(AgentStatusService).status();
      assert.equal(st.policy.version, 'none');
      assert.match(st.policy.source, /^fleet nats:\/\//);
      assert.equal(st.fleet?.hostId, 'graph-1');
      assert.ok(st.spool, 'the spool section');
      assert.ok(await answersDns(st.proxy.port), 'the proxy answers');
    } finally {
      await app.close();
    }
  });

  it('stops in reverse order and leaves the deploy cgroup and the pins, as an agent stop always did', async () => {
    const name = `cgf-graph-${randomBytes(3).toString('hex')}`;
    const policyFile = join(dir, `${name}.txt`);
    writeFileSync(policyFile, '10.66.0.0/16\n');
    const c = config(name, { policyFile });
    const app = await startAgentApp(c, quietLogger);
    const { proxy, programs } = app.get(AgentStatusService).status();
    const port = proxy.port;
    const metrics = app.get(MetricsServer).address!;
    assert.ok(existsSync(join(c.stateDir, PID_FILE)));
    assert.ok(existsSync(join(c.stateDir, CONTROL_SOCKET)));
    await app.close();

    const pinDir = pinDirFor(ensureBpffs(), name);
    assert.ok(existsSync(join(findCgroup2Root(), name)), 'the deploy cgroup stays');
    assert.deepEqual(readdirSync(join(pinDir, 'links')).sort(), [...programs].sort(), 'every program stays attached through its pinned link');
    for (const m of ['cgf_config', 'cgf_block4', 'cgf_block6', 'cgf_learned']) assert.ok(existsSync(join(pinDir, 'maps', m)), `map ${m} stays pinned`);
    assert.equal(existsSync(join(c.stateDir, PID_FILE)), false, 'the pid file is gone');
    assert.equal(existsSync(join(c.stateDir, CONTROL_SOCKET)), false, 'the control socket is gone');
    assert.equal(await answersDns(port), false, 'the proxy no longer answers');
    await assert.rejects(fetch(`http://127.0.0.1:${metrics.port}/healthz`), 'the metrics listener is closed');

    // The next agent adopts the pins.
    const again = await startAgentApp(c, quietLogger);
    try {
      assert.equal(again.get(AgentStatusService).status().adoptedPins, true);
    } finally {
      await again.close();
    }
  });
});

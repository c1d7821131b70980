import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { NatsServer } from './nats';
import { PostgresServer } from './postgres';
import { waitFor } from './ports';
import { TcpLink } from './tcp-link';

describe('local services', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cgfence-devservices-'));
  let pg: PostgresServer;
  let nats: NatsServer;

  before(async () => {
    [pg, nats] = await Promise.all([
      PostgresServer.start({ dir: join(dir, 'pg'), fast: true }),
      NatsServer.start({ dir: join(dir, 'nats') }),
    ]);
  });

  after(async () => {
    await Promise.allSettled([pg?.stop(), nats?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs PostgreSQL as the postgres user, not root', async () => {
    const url = await pg.createDatabase('probe');
    const c = new Client({ connectionString: url });
    await c.connect();
    const { rows } = await c.query<{ ok: number }>('select 40 + 2 as ok');
    await c.end();
    assert.equal(rows[0]?.ok, 42);
    const pid = readFileSync(join(dir, 'pg', 'data', 'postmaster.pid'), 'utf8').split('\n')[0];
    const uidLine = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('Uid:'));
    assert.notEqual(uidLine?.split(/\s+/)[1], '0', 'postgres must not run as root');
  });

  it('runs nats-server with JetStream enabled, surviving a restart', async () => {
    await nats.restart();
    const nc = await connect({ servers: nats.url() });
    const jsm = await jetstreamManager(nc);
    const info = await jsm.getAccountInfo();
    assert.ok(info.limits !== undefined);
    await nc.close();
  });

  it('cuts one client off through a TcpLink and lets it back in after restore', async () => {
    const link = await TcpLink.start({ host: '127.0.0.1', port: nats.port });
    const direct = await connect({ servers: nats.url() });
    const linked = await connect({ servers: `nats://127.0.0.1:${link.port}`, maxReconnectAttempts: -1, reconnectTimeWait: 50 });
    try {
      const seen: string[] = [];
      void (async () => {
        for await (const s of linked.status()) seen.push(s.type);
      })();
      await linked.flush();
      assert.equal(link.connections, 1);
      link.cut();
      await waitFor('the linked client to notice', async () => seen.includes('disconnect'), 5000);
      await new Promise((r) => setTimeout(r, 300));
      assert.ok(!seen.includes('reconnect'), 'no way through while the link is down');
      await direct.flush();
      link.restore();
      await waitFor('the linked client to reconnect', async () => seen.includes('reconnect'), 5000);
      await linked.flush();
    } finally {
      await Promise.allSettled([linked.close(), direct.close()]);
      await link.close();
    }
  });
});

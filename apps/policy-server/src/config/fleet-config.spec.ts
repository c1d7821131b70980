import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { streamReplicas } from '../nats/nats.service';
import { ConfigError, loadConfig } from './config';

const DB = { CGFENCE_DATABASE_URL: 'postgres://u@127.0.0.1:5/db' };

describe('loadConfig: NATS credentials, TLS and replicas (issue 17)', () => {
  it('reads creds, CA, JWT dir, advertised URLs, HTTPS and replicas', () => {
    const sut = loadConfig({
      ...DB,
      CGFENCE_NATS_URL: 'tls://a:4222,tls://b:4222',
      CGFENCE_NATS_CREDS: '/x/server.creds',
      CGFENCE_NATS_CA: '/x/ca.pem',
      CGFENCE_NATS_JWT_DIR: '/x',
      CGFENCE_JETSTREAM_REPLICAS: '3',
      CGFENCE_TLS_CERT: '/x/c.pem',
      CGFENCE_TLS_KEY: '/x/k.pem',
    });
    assert.deepEqual(sut.natsAdvertise, ['tls://a:4222', 'tls://b:4222'], 'default: the server URLs');
    assert.equal(sut.jetstreamReplicas, 3);
    assert.deepEqual(sut.tls, { certFile: '/x/c.pem', keyFile: '/x/k.pem' });
    assert.equal(loadConfig(DB).jetstreamReplicas, 'auto');
    assert.deepEqual(loadConfig({ ...DB, CGFENCE_NATS_ADVERTISE: 'tls://n1:4222,nats://n2:4222' }).natsAdvertise, ['tls://n1:4222', 'nats://n2:4222']);
  });

  it('names what is wrong: both seed and creds, a cert without key, bad replicas, bad advertised URLs', () => {
    assert.throws(() => loadConfig({ ...DB, CGFENCE_NATS_SEED: '/a', CGFENCE_NATS_CREDS: '/b' }), (e: unknown) => e instanceof ConfigError && /CGFENCE_NATS_CREDS: .*not both/.test(e.message));
    assert.throws(() => loadConfig({ ...DB, CGFENCE_TLS_CERT: '/c' }), /CGFENCE_TLS_KEY: CGFENCE_TLS_CERT and CGFENCE_TLS_KEY go together/);
    for (const bad of ['0', '6', 'three', '1.5']) assert.throws(() => loadConfig({ ...DB, CGFENCE_JETSTREAM_REPLICAS: bad }), /CGFENCE_JETSTREAM_REPLICAS/, bad);
    assert.throws(() => loadConfig({ ...DB, CGFENCE_NATS_ADVERTISE: 'http://x' }), /CGFENCE_NATS_ADVERTISE/);
  });
});

describe(streamReplicas.name, () => {
  it('auto: 3 in a cluster of three or more, the cluster size below, 1 alone; a number as given', () => {
    assert.equal(streamReplicas('auto', undefined), 1);
    assert.equal(streamReplicas('auto', { cluster: '' } as never), 1);
    assert.equal(streamReplicas('auto', { cluster: 'c', connect_urls: ['a', 'b', 'c', 'd', 'e'] } as never), 3);
    assert.equal(streamReplicas('auto', { cluster: 'c', connect_urls: ['a', 'b'] } as never), 2);
    assert.equal(streamReplicas('auto', { cluster: 'c' } as never), 3);
    assert.equal(streamReplicas(1, { cluster: 'c', connect_urls: ['a', 'b', 'c'] } as never), 1);
  });

  it('auto never scales an existing stream down: a node that is down is missing from INFO (issue 17), only a configured number scales down', () => {
    const degraded = { cluster: 'c', connect_urls: ['a', 'b'] } as never;
    assert.equal(streamReplicas('auto', degraded, 3), 3);
    assert.equal(streamReplicas('auto', { cluster: 'c', connect_urls: ['a'] } as never, 3), 3, 'a node just restarted, without its routes');
    assert.equal(streamReplicas('auto', { cluster: 'c', connect_urls: ['a', 'b', 'c'] } as never, 1), 3, 'a stream from before replication is scaled up');
    assert.equal(streamReplicas(2, degraded, 3), 2);
  });
});

// The deployment files and the nats-server configuration the project
// generates, checked by the tools' own validators: `nats-server -t` for NATS
// configurations (with the TLS files and resolver.conf they include),
// `systemd-analyze verify` for the systemd units, and the compose file read
// as YAML for what it must say (Docker does not run on these machines).
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { createTestCa, issueCert, natsServerBin, natsTlsConfig } from '@cgfence/devservices';
import { initJwtAuth, renderResolverConfig } from './index';

const DOCKER = join(__dirname, '..', '..', '..', '..', 'docker');

/** nats-server -t -c FILE: its exit code and message. */
function natsCheck(file: string, env: NodeJS.ProcessEnv = process.env): { code: number | null; out: string } {
  const r = spawnSync(natsServerBin(), ['-t', '-c', file], { env, encoding: 'utf8' });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

function systemdAnalyze(): string {
  try {
    return execFileSync('sh', ['-c', 'command -v systemd-analyze']).toString().trim();
  } catch {
    throw new Error('systemd-analyze not found: run scripts/setup.sh (installs Debian package systemd)');
  }
}

describe('deployment files and generated nats-server configuration', () => {
  const root = mkdtempSync(join(tmpdir(), 'cgfence-deploy-files-'));
  after(() => rmSync(root, { recursive: true, force: true }));

  it('docker/nats/nats.conf passes nats-server -t with the TLS files and the resolver.conf it includes', async () => {
    const dir = join(root, 'compose');
    const tls = join(dir, 'tls');
    const ca = createTestCa(tls);
    const cert = issueCert(ca, 'nats', ['nats-1', 'nats-2', 'nats-3', 'localhost']);
    assert.equal(cert.certFile, join(tls, 'nats.pem'));
    const jwt = await initJwtAuth(join(dir, 'jwt'), { resolverDir: '/data/resolver' });
    // The shipped file, with its mount points (/etc/nats/tls, /data) mapped to the temp directory.
    const conf = readFileSync(join(DOCKER, 'nats', 'nats.conf'), 'utf8').replaceAll('/etc/nats/tls/', `${tls}/`).replaceAll('/data/', `${dir}/data/`);
    writeFileSync(join(dir, 'nats.conf'), conf);
    writeFileSync(join(dir, 'resolver.conf'), readFileSync(jwt.resolverConfigFile, 'utf8').replaceAll('/data/', `${dir}/data/`));
    const ok = natsCheck(join(dir, 'nats.conf'), { ...process.env, NATS_NAME: 'nats-1' });
    assert.equal(ok.code, 0, ok.out);
    // The check can fail: without resolver.conf, or with a certificate missing.
    rmSync(join(dir, 'resolver.conf'));
    assert.notEqual(natsCheck(join(dir, 'nats.conf'), { ...process.env, NATS_NAME: 'nats-1' }).code, 0);
    cpSync(jwt.resolverConfigFile, join(dir, 'resolver.conf'));
    rmSync(cert.keyFile);
    const noKey = natsCheck(join(dir, 'nats.conf'), { ...process.env, NATS_NAME: 'nats-1' });
    assert.notEqual(noKey.code, 0);
    assert.match(noKey.out, /nats-key\.pem/);
  });

  it('the resolver configuration cgfence generates, with TLS and a cluster block, passes nats-server -t', async () => {
    const dir = join(root, 'generated');
    mkdirSync(dir, { recursive: true });
    const ca = createTestCa(join(dir, 'ca'));
    const cert = issueCert(ca, 'node', ['localhost', '127.0.0.1']);
    await initJwtAuth(join(dir, 'jwt'));
    const file = join(dir, 'nats.conf');
    writeFileSync(
      file,
      [
        'listen: "127.0.0.1:4222"',
        'server_name: "check"',
        `jetstream { store_dir: ${JSON.stringify(join(dir, 'js'))} }`,
        natsTlsConfig({ ...cert, caFile: ca.caFile }),
        'cluster { name: "c", listen: "127.0.0.1:6222", routes: ["nats-route://127.0.0.1:6223"] }',
        renderResolverConfig(join(dir, 'jwt'), join(dir, 'resolver')),
      ].join('\n'),
    );
    const r = natsCheck(file);
    assert.equal(r.code, 0, r.out);
  });

  it('the systemd units pass systemd-analyze verify (and a broken one does not)', () => {
    const bin = systemdAnalyze();
    for (const unit of ['host-agent.service', 'host-agent-fleet.service']) {
      const r = spawnSync(bin, ['verify', join(DOCKER, unit)], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${unit}: ${r.stdout}${r.stderr}`);
    }
    const broken = join(root, 'broken.service');
    writeFileSync(broken, readFileSync(join(DOCKER, 'host-agent-fleet.service'), 'utf8').replace('ExecStart=/usr/bin/node', 'ExecStart=node-relative'));
    assert.notEqual(spawnSync(bin, ['verify', broken], { encoding: 'utf8' }).status, 0);
  });

  it('the fleet unit enrolls with a token file and keeps its state in /var/lib/cgfence', () => {
    const unit = readFileSync(join(DOCKER, 'host-agent-fleet.service'), 'utf8');
    assert.match(unit, /--enroll \$\{CGFENCE_ENROLL_URL\}/);
    assert.match(unit, /--enroll-token-file \/etc\/cgfence\/enroll-token/);
    assert.match(unit, /--ca \/etc\/cgfence\/ca\.pem/);
    assert.match(unit, /--state-dir \/var\/lib\/cgfence/);
    assert.match(unit, /StateDirectoryMode=0700/);
  });

  it('compose.yaml runs NATS with TLS and JWT authorization, and the policy server with creds, CA, R3 and HTTPS', () => {
    const compose = parse(readFileSync(join(DOCKER, 'compose.yaml'), 'utf8')) as {
      services: Record<string, { volumes?: string[]; environment?: Record<string, string> }>;
    };
    for (const n of ['nats-1', 'nats-2', 'nats-3']) {
      const volumes = compose.services[n]?.volumes ?? [];
      assert.ok(volumes.some((v) => v.endsWith(':/etc/nats/resolver.conf:ro')), `${n} mounts resolver.conf`);
      assert.ok(volumes.some((v) => v.endsWith(':/etc/nats/tls:ro')), `${n} mounts its TLS files`);
    }
    const env = compose.services['policy-server']?.environment ?? {};
    assert.ok(env['CGFENCE_NATS_URL']?.split(',').every((u) => u.startsWith('tls://')), env['CGFENCE_NATS_URL']);
    for (const k of ['CGFENCE_NATS_CREDS', 'CGFENCE_NATS_JWT_DIR', 'CGFENCE_NATS_CA', 'CGFENCE_TLS_CERT', 'CGFENCE_TLS_KEY', 'CGFENCE_NATS_ADVERTISE']) {
      assert.ok(env[k], `policy-server sets ${k}`);
    }
    assert.equal(env['CGFENCE_JETSTREAM_REPLICAS'], '3');
    assert.equal(env['CGFENCE_NATS_SEED'], undefined, 'no nkey: JWT authorization');
  });
});

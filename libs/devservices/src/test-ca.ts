// A throwaway certificate authority for tests and the local fleet, made with
// the openssl command line (Debian's openssl package; scripts/setup.sh
// installs it): a CA, and certificates it signs for loopback names.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestCa {
  dir: string;
  /** The CA certificate (PEM): what clients verify against. */
  caFile: string;
  caKeyFile: string;
}

export interface IssuedCert {
  certFile: string;
  keyFile: string;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { code?: string; stderr?: Buffer };
    if (e.code === 'ENOENT') throw new Error('openssl not found on PATH: run scripts/setup.sh (installs Debian package openssl)');
    throw new Error(`openssl ${args[0]} failed: ${e.stderr?.toString().trim() ?? String(err)}`);
  }
}

/** A new CA (EC P-256, valid `days`) in `dir`. Reuses one already there. */
export function createTestCa(dir: string, opts: { name?: string; days?: number } = {}): TestCa {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const caFile = join(dir, 'ca.pem');
  const caKeyFile = join(dir, 'ca-key.pem');
  if (!existsSync(caFile) || !existsSync(caKeyFile)) {
    openssl(
      [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
        '-keyout', caKeyFile, '-out', caFile, '-days', String(opts.days ?? 30),
        '-subj', `/CN=${opts.name ?? 'cgfence test CA'}`,
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
      ],
      dir,
    );
    chmodSync(caKeyFile, 0o600);
  }
  return { dir, caFile, caKeyFile };
}

/**
 * A certificate signed by `ca` for `names` (DNS names and IP addresses, all
 * in subjectAltName), usable as server and client certificate (NATS cluster
 * routes present theirs both ways).
 */
export function issueCert(ca: TestCa, name: string, names: string[], opts: { days?: number } = {}): IssuedCert {
  if (!/^[a-z0-9][a-z0-9-]*$/.test(name)) throw new Error(`certificate name ${JSON.stringify(name)}: use a-z, 0-9 and "-"`);
  const keyFile = join(ca.dir, `${name}-key.pem`);
  const csrFile = join(ca.dir, `${name}.csr`);
  const certFile = join(ca.dir, `${name}.pem`);
  const extFile = join(ca.dir, `${name}.ext`);
  const san = names.map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
  writeFileSync(
    extFile,
    [`subjectAltName=${san}`, 'basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', 'extendedKeyUsage=serverAuth,clientAuth', ''].join('\n'),
  );
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', csrFile, '-subj', `/CN=${names[0] ?? name}`], ca.dir);
  chmodSync(keyFile, 0o600);
  openssl(
    ['x509', '-req', '-in', csrFile, '-CA', ca.caFile, '-CAkey', ca.caKeyFile, '-CAcreateserial', '-out', certFile, '-days', String(opts.days ?? 30), '-extfile', extFile],
    ca.dir,
  );
  return { certFile, keyFile };
}

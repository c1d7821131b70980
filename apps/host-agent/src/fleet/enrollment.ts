// Enrollment of this host with a join token (`cgfence agent --enroll URL
// --enroll-token TOKEN`): the host makes its own NATS key (the seed never
// leaves it), sends the public key with the token, and keeps what the policy
// server answers in <state-dir>/fleet/enrollment/ (creds 0600). From then on
// the agent starts in fleet mode from that directory alone.
//
// Kept apart from the fleet client and the command line (plain functions,
// no Nest), so the agent's module layout can change around it.
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import { Agent as HttpAgent, fetch as undiciFetch } from 'undici';
import { formatCreds, natsConnectOptions, newUserKey, NatsAuthError } from '@cgfence/nats-auth';
import { checkHostId, ENROLL_TOKEN_PATTERN, type EnrollResponse, type ErrorBody } from '@cgfence/proto';
import { FleetConfigError, parseServers } from './fleet-config';

export const ENROLLMENT_DIR = join('fleet', 'enrollment');
const FILES = { record: 'enrollment.json', creds: 'nats.creds', ca: 'nats-ca.pem', serverKey: 'server-key.pem' } as const;

/** What an enrolled host keeps (enrollment.json) and where its files are. */
export interface Enrollment {
  hostId: string;
  servers: string[];
  labels: Record<string, string>;
  enrolledAt: string;
  policyServer: string;
  credsFile: string;
  caFile: string | undefined;
  serverKeyFile: string;
}

export const enrollmentDir = (stateDir: string): string => join(stateDir, ENROLLMENT_DIR);

function writeAtomic(file: string, text: string, mode: number): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, file);
}

/** The enrollment in the state directory, checked; undefined if the host never enrolled. Throws FleetConfigError naming a damaged file. */
export function readEnrollment(stateDir: string): Enrollment | undefined {
  const dir = enrollmentDir(stateDir);
  const recordFile = join(dir, FILES.record);
  if (!existsSync(recordFile)) return undefined;
  let record: Partial<Enrollment>;
  try {
    record = JSON.parse(readFileSync(recordFile, 'utf8')) as Partial<Enrollment>;
  } catch (err) {
    throw new FleetConfigError(`${recordFile}: ${(err as Error).message}; enroll again (remove ${dir} and run cgfence agent --enroll URL --enroll-token TOKEN)`);
  }
  const hostId = String(record.hostId ?? '');
  const problem = checkHostId(hostId);
  if (problem !== undefined) throw new FleetConfigError(`${recordFile}: ${problem}`);
  const caFile = join(dir, FILES.ca);
  const enrollment: Enrollment = {
    hostId,
    servers: parseServers((record.servers ?? []).join(',')),
    labels: record.labels ?? {},
    enrolledAt: String(record.enrolledAt ?? ''),
    policyServer: String(record.policyServer ?? ''),
    credsFile: join(dir, FILES.creds),
    caFile: existsSync(caFile) ? caFile : undefined,
    serverKeyFile: join(dir, FILES.serverKey),
  };
  try {
    natsConnectOptions({ credsFile: enrollment.credsFile, caFile: enrollment.caFile, hostId });
  } catch (err) {
    if (err instanceof NatsAuthError) throw new FleetConfigError(`the enrollment in ${dir} is damaged: ${err.message}`);
    throw err;
  }
  return enrollment;
}

/** The join token from --enroll-token or --enroll-token-file (trimmed), checked for shape. */
export function readEnrollToken(o: { token?: string; tokenFile?: string }): string {
  if ((o.token === undefined) === (o.tokenFile === undefined)) throw new FleetConfigError('--enroll needs one of --enroll-token TOKEN or --enroll-token-file FILE');
  let token = o.token;
  if (o.tokenFile !== undefined) {
    try {
      token = readFileSync(o.tokenFile, 'utf8').trim();
    } catch (err) {
      throw new FleetConfigError(`--enroll-token-file ${o.tokenFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  if (!ENROLL_TOKEN_PATTERN.test(token ?? '')) throw new FleetConfigError('the enrollment token is not a cgfence enrollment token (cgfe_…; from cgfence hosts enroll-token create)');
  return token!;
}

/** Why an enrollment failed, for the operator reading the agent's error. */
export class EnrollmentError extends Error {
  constructor(
    message: string,
    /** A network error or a 5xx: worth trying again; a 4xx is final. */
    readonly transient = false,
  ) {
    super(message);
  }
}

/** Attempts of an enrollment whose failures are transient, and the first pause (doubled each time): 1+2+4+8+16 s. */
export const ENROLL_ATTEMPTS = 6;
const ENROLL_FIRST_PAUSE_MS = 1000;

/**
 * enrollHost, tried again after a network error or a 5xx (a host booting
 * before the network or the server is up); a refusal (4xx) ends it at once.
 */
export async function enrollHostWithRetry(o: Parameters<typeof enrollHost>[0], log: (message: string) => void = () => undefined): Promise<Enrollment> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await enrollHost(o);
    } catch (err) {
      if (!(err instanceof EnrollmentError) || !err.transient || attempt >= ENROLL_ATTEMPTS) throw err;
      const pause = ENROLL_FIRST_PAUSE_MS * 2 ** (attempt - 1);
      log(`${err.message}; trying again in ${pause / 1000} s (attempt ${attempt + 1} of ${ENROLL_ATTEMPTS})`);
      await new Promise((r) => setTimeout(r, pause));
    }
  }
}

/**
 * Enrolls this host: a new NATS user key, POST <url>/enroll with the token,
 * and the answer written to the state directory (creds 0600, directory 0700).
 * `ca` is the PEM CA of the policy server's HTTPS (--ca).
 */
export async function enrollHost(o: { url: string; token: string; hostId: string; stateDir: string; ca?: string; hostname?: string }): Promise<Enrollment> {
  let base: URL;
  try {
    base = new URL(o.url.endsWith('/') ? o.url : `${o.url}/`);
  } catch {
    throw new FleetConfigError(`--enroll ${JSON.stringify(o.url)}: not a URL (expected https://POLICY_SERVER)`);
  }
  if (!['http:', 'https:'].includes(base.protocol)) throw new FleetConfigError(`--enroll ${o.url}: expected an http(s):// URL of the policy server`);
  const key = newUserKey();
  const dispatcher = o.ca === undefined ? undefined : new HttpAgent({ connect: { ca: o.ca } });
  let res;
  try {
    res = await undiciFetch(new URL('enroll', base), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ token: o.token, hostId: o.hostId, natsPublicKey: key.getPublicKey(), hostname: o.hostname ?? osHostname() }),
      ...(dispatcher ? { dispatcher } : {}),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new EnrollmentError(`cannot reach the policy server at ${o.url}: ${cause?.code ?? cause?.message ?? (err as Error).message}`, true);
  } finally {
    void dispatcher?.close();
  }
  const raw = await res.text();
  if (!res.ok) {
    let why = raw.slice(0, 300);
    try {
      const body = JSON.parse(raw) as ErrorBody;
      why = `${body.message} [${body.code}]`;
    } catch {
      // not the error shape: show the text
    }
    throw new EnrollmentError(`the policy server refused the enrollment (${res.status}): ${why}`, res.status >= 500);
  }
  const answer = JSON.parse(raw) as EnrollResponse;
  const dir = enrollmentDir(o.stateDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  writeAtomic(join(dir, FILES.creds), formatCreds(answer.natsJwt, key), 0o600);
  if (answer.natsCa !== null) writeAtomic(join(dir, FILES.ca), answer.natsCa, 0o644);
  writeAtomic(join(dir, FILES.serverKey), answer.serverKeys, 0o644);
  // The record last: without it the host is not enrolled, whatever else is there.
  const record = { hostId: answer.hostId, servers: answer.natsServers, labels: answer.labels, enrolledAt: new Date().toISOString(), policyServer: o.url };
  writeAtomic(join(dir, FILES.record), `${JSON.stringify(record, null, 2)}\n`, 0o600);
  const enrollment = readEnrollment(o.stateDir);
  if (!enrollment) throw new EnrollmentError(`the enrollment was not written to ${dir}`);
  return enrollment;
}

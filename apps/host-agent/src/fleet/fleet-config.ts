// Fleet-mode settings of `cgfence agent --server …`: host id, labels, the
// policy server's keys, the NATS URL. Each reader throws a FleetConfigError
// whose message says which flag or file is wrong and how to fix it.
import type { KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkHostId, parsePublicKeys } from '@cgfence/proto';

export class FleetConfigError extends Error {}

export const MACHINE_ID_FILE = '/etc/machine-id';

/** As the control protocol's run labels (libs/proto agent/control.ts). */
const LABEL_KEY = /^[a-zA-Z0-9_.\-/]{1,63}$/;

/** --host-id, or the content of /etc/machine-id; must be a valid NATS subject token. */
export function resolveHostId(explicit: string | undefined, machineIdFile = MACHINE_ID_FILE): string {
  let id = explicit;
  let from = '--host-id';
  if (id === undefined) {
    from = machineIdFile;
    try {
      id = readFileSync(machineIdFile, 'utf8').trim();
    } catch (err) {
      throw new FleetConfigError(`no --host-id given and ${machineIdFile} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): pass --host-id ID`);
    }
  }
  const problem = checkHostId(id);
  if (problem !== undefined) throw new FleetConfigError(`${from}: ${problem}${explicit === undefined ? '; pass --host-id ID' : ''}`);
  return id;
}

/** key=value lines; blank lines and '# comments' ignored. */
export function parseLabelsText(text: string, what: string): Record<string, string> {
  const labels: Record<string, string> = {};
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '').trim();
    if (line === '' || line.startsWith('#')) return;
    const at = line.indexOf('=');
    if (at <= 0) throw new FleetConfigError(`${what} line ${i + 1}: expected key=value, got ${JSON.stringify(line)}`);
    labels[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  });
  return labels;
}

/** --label key=value pairs. */
export function parseLabelPairs(pairs: readonly string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new FleetConfigError(`--label ${JSON.stringify(pair)}: expected key=value`);
    labels[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return labels;
}

/**
 * The host's labels: --labels-file, overridden by --label, and --cohort as
 * the label 'cohort' (a different cohort label elsewhere is an error).
 */
export function resolveLabels(o: { labelsFile?: string; label?: readonly string[]; cohort?: string }): Record<string, string> {
  let fromFile: Record<string, string> = {};
  if (o.labelsFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(o.labelsFile, 'utf8');
    } catch (err) {
      throw new FleetConfigError(`--labels-file ${o.labelsFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    fromFile = parseLabelsText(text, `--labels-file ${o.labelsFile}`);
  }
  const labels: Record<string, string> = { ...fromFile, ...parseLabelPairs(o.label ?? []) };
  if (o.cohort !== undefined) {
    if (labels.cohort !== undefined && labels.cohort !== o.cohort) {
      throw new FleetConfigError(`--cohort ${o.cohort} contradicts the label cohort=${labels.cohort}: give the cohort once`);
    }
    labels.cohort = o.cohort;
  }
  for (const [k, v] of Object.entries(labels)) {
    if (!LABEL_KEY.test(k)) throw new FleetConfigError(`label ${JSON.stringify(k)}: label keys are 1-63 of letters, digits, "_", ".", "-", "/"`);
    if (v.length > 256) throw new FleetConfigError(`label ${k}: the value is longer than 256 characters`);
  }
  return labels;
}

/** The policy server's Ed25519 public keys (one or more PEM blocks) from --server-key. */
export function readServerKeys(file: string): Map<string, KeyObject> {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new FleetConfigError(`--server-key ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return parsePublicKeys(pem);
  } catch (err) {
    throw new FleetConfigError(`--server-key ${file}: ${(err as Error).message} (expected the policy server's Ed25519 public key(s) in PEM)`);
  }
}

/** --server: one or more comma-separated nats:// (or tls://) URLs. */
export function parseServers(value: string): string[] {
  const servers = value.split(',').map((s) => s.trim()).filter(Boolean);
  if (servers.length === 0) throw new FleetConfigError('--server: no URL given (expected nats://HOST:PORT)');
  for (const s of servers) {
    let url: URL;
    try {
      url = new URL(s);
    } catch {
      throw new FleetConfigError(`--server ${JSON.stringify(s)}: not a URL (expected nats://HOST:PORT)`);
    }
    if (!['nats:', 'tls:'].includes(url.protocol) || url.hostname === '') {
      throw new FleetConfigError(`--server ${JSON.stringify(s)}: expected nats://HOST:PORT or tls://HOST:PORT`);
    }
  }
  return servers;
}

/** The host agent's version, from its package.json. */
export function agentVersion(): string {
  // dist/src/fleet/ → the app directory (apps/host-agent).
  for (const dir of [join(__dirname, '..', '..', '..'), join(__dirname, '..', '..')]) {
    const file = join(dir, 'package.json');
    if (!existsSync(file)) continue;
    try {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === '@cgfence/host-agent' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // try the next candidate
    }
  }
  return 'unknown';
}

/** ±fraction of jitter around `ms`. */
export function jittered(ms: number, fraction = 0.2, random = Math.random): number {
  return Math.round(ms * (1 - fraction + random() * 2 * fraction));
}

/** Fleet mode's settings, validated at boot (cli/main.ts) and injected as FLEET_SETTINGS. */
export interface FleetSettings {
  readonly servers: readonly string[];
  readonly ring: ReadonlyMap<string, KeyObject>;
  readonly hostId: string;
  readonly labels: Readonly<Record<string, string>>;
  /** This host's NATS nkey seed file; without it the agent connects unauthenticated. */
  readonly seedFile?: string;
  readonly syncIntervalMs?: number;
  readonly reportIntervalMs?: number;
  /** Pause between connection attempts. Default 2 s. */
  readonly reconnectWaitMs?: number;
  /** Bound of the disk spool of events not yet shipped. */
  readonly spoolMaxBytes?: number;
}

// What each NATS user of a cgfence deployment may do, and the nats-server
// `authorization` block that says so. Pure: no files, no processes.
import { checkHostId, FLEET_SUBJECTS } from '@cgfence/proto';

/** A host id that is not a NATS subject token cgfence accepts. */
export class InvalidHostIdError extends Error {
  constructor(readonly hostId: string, reason: string) {
    super(reason);
    this.name = 'InvalidHostIdError';
  }
}

/** Throws InvalidHostIdError naming the id unless it is a valid host id. */
export function assertHostId(hostId: string): string {
  const problem = checkHostId(hostId);
  if (problem !== undefined) throw new InvalidHostIdError(hostId, problem);
  return hostId;
}

/**
 * Where a host publishes its block events (JetStream publish: a plain publish to
 * the stream subject, the ack comes back on the host's inbox); the subjects
 * themselves are EVENT_SUBJECTS in @cgfence/proto.
 */
export const hostEventsPublish = (hostId: string): string => `cgf.events.${hostId}.>`;

export interface Permissions {
  publish: string[];
  subscribe: string[];
}

/** The policy server runs JetStream administration and replies to every host: everything. */
export const SERVER_PERMISSIONS: Readonly<Permissions> = Object.freeze({ publish: ['>'], subscribe: ['>'] });

/**
 * A host publishes only under its own id (fleet requests and events, JetStream
 * publishes to its events subject) and reads only the broadcast and its own
 * inbox. Everything else is denied (nats-server denies what is not allowed).
 */
export function hostPermissions(hostId: string): Permissions {
  assertHostId(hostId);
  return {
    publish: [FLEET_SUBJECTS.hostPublish(hostId), hostEventsPublish(hostId)],
    subscribe: [FLEET_SUBJECTS.desired, `${FLEET_SUBJECTS.inboxPrefix(hostId)}.>`],
  };
}

/** The inbox prefix a host's connection must use, so its replies reach it. */
export const hostInboxPrefix = (hostId: string): string => FLEET_SUBJECTS.inboxPrefix(assertHostId(hostId));

export interface AuthUsers {
  /** The policy server's nkey public key (U…). */
  server: string;
  hosts: { hostId: string; publicKey: string }[];
}

const USER_PUBLIC_KEY = /^U[A-Z2-7]{55}$/;

function checkUserKey(what: string, key: string): void {
  if (!USER_PUBLIC_KEY.test(key)) throw new Error(`${what}: ${JSON.stringify(key)} is not an nkey user public key (U…, 56 characters)`);
}

const list = (subjects: string[]): string => `[${subjects.map((s) => JSON.stringify(s)).join(', ')}]`;

function userEntry(comment: string, nkey: string, p: Permissions): string[] {
  return [
    `    # ${comment}`,
    `    {`,
    `      nkey: ${JSON.stringify(nkey)}`,
    `      permissions: {`,
    `        publish: { allow: ${list(p.publish)} }`,
    `        subscribe: { allow: ${list(p.subscribe)} }`,
    `      }`,
    `    }`,
  ];
}

/**
 * The nats-server `authorization { users = [...] }` block: the server user with
 * every permission, one nkey user per host with its own subjects only. Hosts
 * are written sorted by id, so the same keys always give the same text.
 */
export function renderAuthorization(users: AuthUsers, header: string[] = []): string {
  checkUserKey('server', users.server);
  const seen = new Map<string, string>();
  for (const h of users.hosts) {
    assertHostId(h.hostId);
    checkUserKey(`host ${h.hostId}`, h.publicKey);
    if (seen.has(h.hostId)) throw new Error(`host ${h.hostId} is listed twice`);
    const owner = [...seen.entries()].find(([, k]) => k === h.publicKey)?.[0] ?? (h.publicKey === users.server ? 'the server' : undefined);
    if (owner !== undefined) throw new Error(`host ${h.hostId} has the same key as ${owner}`);
    seen.set(h.hostId, h.publicKey);
  }
  const hosts = [...users.hosts].sort((a, b) => a.hostId.localeCompare(b.hostId));
  return [
    ...header.map((l) => `# ${l}`),
    'authorization {',
    '  users = [',
    ...userEntry('policy server', users.server, SERVER_PERMISSIONS),
    ...hosts.flatMap((h) => userEntry(`host ${h.hostId}`, h.publicKey, hostPermissions(h.hostId))),
    '  ]',
    '}',
    '',
  ].join('\n');
}

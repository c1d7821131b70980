// The NATS subjects of the fleet protocol, in one place for the server, the
// agent, the NATS permissions generator and the fleet simulator.
//
//   cgf.fleet.desired             server → every agent: the signed desired-state
//                                 document (published through JetStream with a
//                                 message id; agents read it with a plain
//                                 subscription, no consumer per agent)
//   cgf.agent.<host>.register     agent → server, request: who I am
//   cgf.agent.<host>.sync         agent → server, request: the current document
//   cgf.agent.<host>.bundle       agent → server, request: one chunk of a bundle
//   cgf.agent.<host>.report       agent → server, event: what I applied, health
//   _INBOX_<host>.>               the replies to one host (its own inbox prefix)
//
// A host may publish only under cgf.agent.<its id>. and read only its inbox and
// the broadcast, so the host id in the subject is proof of who sent it.

/** Host ids are NATS subject tokens: lower-case letters, digits, '-' and '_'. */
export const HOST_ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export function checkHostId(id: string): string | undefined {
  return HOST_ID_PATTERN.test(id)
    ? undefined
    : `host id ${JSON.stringify(id)} must be 1-63 characters of a-z, 0-9, "-" and "_", starting with a letter or digit`;
}

export const FLEET_SUBJECTS = {
  desired: 'cgf.fleet.desired',
  register: (host: string) => `cgf.agent.${host}.register`,
  sync: (host: string) => `cgf.agent.${host}.sync`,
  bundle: (host: string) => `cgf.agent.${host}.bundle`,
  report: (host: string) => `cgf.agent.${host}.report`,
  /** Everything one host may publish. */
  hostPublish: (host: string) => `cgf.agent.${host}.>`,
  inboxPrefix: (host: string) => `_INBOX_${host}`,
} as const;

/** The server's subscriptions (NestJS message patterns); one queue group across replicas. */
export const SERVER_PATTERNS = {
  register: 'cgf.agent.*.register',
  sync: 'cgf.agent.*.sync',
  bundle: 'cgf.agent.*.bundle',
  report: 'cgf.agent.*.report',
} as const;

export const SERVER_QUEUE = 'cgfence-policy-server';

/** The JetStream stream that keeps the broadcast (dedupe by message id, last few kept). */
export const FLEET_STREAM = { name: 'CGF_FLEET', subjects: ['cgf.fleet.>'] } as const;

/** The host id a server-side subject names, or undefined. */
export function hostOfSubject(subject: string): string | undefined {
  const parts = subject.split('.');
  if (parts.length !== 4 || parts[0] !== 'cgf' || parts[1] !== 'agent') return undefined;
  return checkHostId(parts[2]!) === undefined ? parts[2] : undefined;
}

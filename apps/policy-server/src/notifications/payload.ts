// What a notification says: a cgfence JSON body, or a Slack-compatible one.
import type { Trigger } from '@cgfence/proto';

export interface Notice {
  trigger: Trigger;
  /** One line a person reads first. */
  subject: string;
  occurredAt: string;
  actor: string;
  /** The finding, rollout, host or fleet change, as the API shows it. */
  details: Record<string, unknown>;
}

export function renderBody(format: 'json' | 'slack', deliveryId: string, n: Notice): string {
  if (format === 'json') return JSON.stringify({ deliveryId, trigger: n.trigger, subject: n.subject, occurredAt: n.occurredAt, actor: n.actor, ...n.details });
  const facts = Object.entries(n.details)
    .flatMap(([k, v]) => (v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.entries(v as Record<string, unknown>) : [[k, v] as const]))
    .filter(([, v]) => v !== null && v !== undefined && !(Array.isArray(v) && v.length === 0))
    .slice(0, 10)
    .map(([k, v]) => `*${k}*: ${Array.isArray(v) ? v.slice(0, 5).join(', ') : String(v)}`);
  return JSON.stringify({
    text: `[cgfence] ${n.subject}`,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: `*${escapeSlack(n.subject)}*` } },
      { type: 'section', text: { type: 'mrkdwn', text: escapeSlack(facts.join('\n')) } },
      { type: 'context', elements: [{ type: 'mrkdwn', text: `${n.trigger} · ${n.occurredAt} · by ${escapeSlack(n.actor)} · delivery ${deliveryId}` }] },
    ],
  });
}

/** One message for a digest target: every notice it held, in its format. */
export function renderDigest(format: 'json' | 'slack', deliveryId: string, owner: string, period: string, notices: readonly Notice[]): { subject: string; body: string } {
  const subject = `${owner}: ${notices.length} finding notification${notices.length === 1 ? '' : 's'} (digest, every ${period})`;
  const occurredAt = notices.reduce((a, n) => (n.occurredAt > a ? n.occurredAt : a), '');
  if (format === 'json') {
    return { subject, body: JSON.stringify({ deliveryId, trigger: 'digest', subject, occurredAt, notices: notices.map((n) => ({ trigger: n.trigger, subject: n.subject, occurredAt: n.occurredAt, actor: n.actor, ...n.details })) }) };
  }
  const lines = notices.slice(0, 40).map((n) => `• ${escapeSlack(n.subject)} (${n.occurredAt})`);
  if (notices.length > 40) lines.push(`… and ${notices.length - 40} more`);
  return {
    subject,
    body: JSON.stringify({
      text: `[cgfence] ${subject}`,
      blocks: [
        { type: 'section', text: { type: 'mrkdwn', text: `*${escapeSlack(subject)}*` } },
        { type: 'section', text: { type: 'mrkdwn', text: lines.join('\n') } },
        { type: 'context', elements: [{ type: 'mrkdwn', text: `digest · delivery ${deliveryId}` }] },
      ],
    }),
  };
}

/** A held notice's JSON body back as a notice. */
export function noticeOf(body: string): Notice {
  const { trigger, subject, occurredAt, actor, deliveryId: _id, ...details } = JSON.parse(body) as Notice & { deliveryId: string } & Record<string, unknown>;
  return { trigger, subject, occurredAt, actor, details };
}

/** Slack's three control characters in mrkdwn. */
function escapeSlack(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

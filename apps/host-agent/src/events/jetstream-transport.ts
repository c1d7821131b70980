import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { EventTransport, PublishAck } from './event-shipper';

/**
 * JetStream publishes over a connection someone else keeps (the FleetClient's):
 * a plain publish to the event subject with a reply inbox for the ack, which
 * is all a host may do (no JetStream API permission, see libs/nats-auth).
 */
export class JetStreamTransport implements EventTransport {
  private client: { nc: NatsConnection; js: JetStreamClient } | undefined;

  /** `connection` returns the live connection, or undefined while there is none. */
  constructor(private readonly connection: () => NatsConnection | undefined) {}

  connected(): boolean {
    const nc = this.connection();
    return nc !== undefined && !nc.isClosed();
  }

  async publish(subject: string, data: Uint8Array, msgId: string, timeoutMs: number): Promise<PublishAck> {
    const nc = this.connection();
    if (nc === undefined || nc.isClosed()) throw new Error('not connected to NATS');
    if (this.client?.nc !== nc) this.client = { nc, js: jetstream(nc, { timeout: timeoutMs }) };
    const ack = await this.client.js.publish(subject, data, { msgID: msgId, timeout: timeoutMs });
    return { stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate };
  }
}

import { CustomTransportStrategy, NatsContext, NatsRequestJSONDeserializer, Server } from '@nestjs/microservices';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';

/** Where the transport finds the fleet link's NATS connection (FleetClient). */
export interface FleetConnectionSource {
  natsConnection(): NatsConnection | undefined;
  onConnection(listener: (nc: NatsConnection) => void): () => void;
}

/**
 * The agent's NATS transport for incoming events (the desired-state
 * broadcast's @EventPattern handler). A custom strategy because Nest's
 * ServerNats opens a connection of its own and fails the start when NATS is
 * unreachable, while the agent must start without the server (it enforces
 * its last good bundle) and has one connection per host: this one subscribes
 * the handlers on the fleet link's connection, each time there is a new one,
 * with no queue group (every host gets every broadcast). A message that is
 * not JSON reaches the handler as { unparsable: true } (rejected and alerted).
 */
export class FleetBroadcastTransport extends Server implements CustomTransportStrategy {
  private source: FleetConnectionSource | undefined;
  private bound: NatsConnection | undefined;
  private subscriptions: Subscription[] = [];
  private unlisten: (() => void) | undefined;

  constructor() {
    super();
    this.deserializer = new NatsRequestJSONDeserializer();
  }

  /** The FleetClient whose connection carries the broadcasts (before listen()). */
  useConnectionsOf(source: FleetConnectionSource): this {
    this.source = source;
    return this;
  }

  listen(callback: (err?: unknown) => void): void {
    if (!this.source) return callback(new Error('FleetBroadcastTransport: no fleet connection source'));
    this.unlisten = this.source.onConnection((nc) => this.bindTo(nc));
    const nc = this.source.natsConnection();
    if (nc) this.bindTo(nc);
    callback();
  }

  close(): void {
    this.unlisten?.();
    for (const s of this.subscriptions.splice(0)) s.unsubscribe();
    this.bound = undefined;
  }

  on(): void {
    // The fleet link owns the connection and reports its state.
  }

  unwrap<T>(): T {
    return this.bound as T;
  }

  private bindTo(nc: NatsConnection): void {
    if (nc === this.bound) return;
    this.subscriptions = [];
    this.bound = nc;
    for (const pattern of this.messageHandlers.keys()) {
      this.subscriptions.push(nc.subscribe(pattern, { callback: (err, msg) => (err ? this.logger.error(err.message) : void this.handle(pattern, msg)) }));
    }
  }

  private async handle(pattern: string, msg: Msg): Promise<void> {
    let packet: { pattern?: unknown; data?: unknown };
    try {
      packet = (await this.deserializer.deserialize(msg, { channel: pattern })) as typeof packet;
    } catch {
      packet = { pattern, data: { unparsable: true } };
    }
    try {
      await this.handleEvent(pattern, { pattern, data: packet.data }, new NatsContext([msg.subject, msg.headers]));
    } catch (err) {
      this.logger.error(`handling ${pattern} failed: ${(err as Error).message}`);
    }
  }
}

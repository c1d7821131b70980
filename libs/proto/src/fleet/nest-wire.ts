// The JSON packets of NestJS's NATS transport, which the policy server uses
// for its request/event handlers. The agent is no Nest app; it speaks the same
// packets with the plain NATS client through these two functions.

export interface NestRequestPacket<T> {
  readonly pattern: string;
  readonly data: T;
  /** Present for a request (a reply is expected), absent for an event. */
  readonly id?: string;
}

export interface NestReplyPacket<T> {
  readonly id: string;
  readonly response?: T;
  readonly err?: unknown;
  readonly isDisposed?: boolean;
  readonly status?: string;
}

export function nestRequest<T>(pattern: string, data: T, id?: string): Uint8Array {
  const packet: NestRequestPacket<T> = id === undefined ? { pattern, data } : { pattern, data, id };
  return new TextEncoder().encode(JSON.stringify(packet));
}

/** The response of a reply packet; throws with the server's error when it sent one. */
export function nestResponse<T>(bytes: Uint8Array): T {
  const packet = JSON.parse(new TextDecoder().decode(bytes)) as NestReplyPacket<T>;
  if (packet.err !== undefined && packet.err !== null) {
    const err = packet.err as { message?: unknown };
    const message = typeof err === 'object' && typeof err.message === 'string' ? err.message : JSON.stringify(packet.err);
    throw new Error(`policy server: ${message}`);
  }
  return packet.response as T;
}

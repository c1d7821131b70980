/** What a caller hands to the store: a type and its data. */
export interface NewEvent<T extends string = string, D = unknown> {
  type: T;
  data: D;
}

/** Who did it and as part of which request. */
export interface EventMetadata {
  actor: string;
  tokenId?: string;
  correlationId: string;
  time: string;
}

/** An event as stored, with its place in the stream and in the whole log. */
export interface StoredEvent<T extends string = string, D = unknown> {
  position: bigint;
  streamId: string;
  streamVersion: number;
  type: T;
  data: D;
  metadata: EventMetadata;
  recordedAt: Date;
}

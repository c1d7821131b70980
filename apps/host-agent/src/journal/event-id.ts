import { randomFillSync } from 'node:crypto';

/**
 * UUID version 7 (RFC 9562 §5.7): 48 bits of Unix milliseconds, then random
 * bits. Ids sort (as strings) in the order they were made, which is what the
 * journal, the disk spool and the server's history index on.
 *
 * Within one millisecond the 12-bit `rand_a` field is used as a counter
 * (RFC 9562 §6.2, method 1), started at a random value below 2048 so there is
 * room to count up. If it runs out, or the clock steps back, the timestamp is
 * carried forward by a millisecond instead of breaking the order.
 */
export class EventIdGenerator {
  private lastMs = -1;
  private counter = 0;
  private readonly random = Buffer.alloc(8);

  constructor(private readonly now: () => number = Date.now) {}

  next(): string {
    let ms = this.now();
    if (ms <= this.lastMs) {
      ms = this.lastMs;
      this.counter++;
      if (this.counter > 0xfff) {
        ms = this.lastMs + 1;
        this.counter = this.seedCounter();
      }
    } else {
      this.counter = this.seedCounter();
    }
    this.lastMs = ms;

    const bytes = Buffer.alloc(16);
    bytes.writeUIntBE(ms, 0, 6);
    bytes.writeUInt16BE(0x7000 | this.counter, 6); // version 7 + rand_a
    randomFillSync(this.random);
    this.random.copy(bytes, 8);
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // variant 10
    const hex = bytes.toString('hex');
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  private seedCounter(): number {
    randomFillSync(this.random, 0, 2);
    return this.random.readUInt16BE(0) & 0x7ff;
  }
}

const shared = new EventIdGenerator();

/** A new time-ordered event id (UUIDv7). */
export function newEventId(): string {
  return shared.next();
}

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

export function isEventId(id: string): boolean {
  return UUID_V7.test(id);
}

/** The millisecond timestamp an id carries. */
export function eventIdTime(id: string): Date {
  if (!isEventId(id)) throw new Error(`not a UUIDv7 event id: ${JSON.stringify(id)}`);
  return new Date(parseInt(id.slice(0, 8) + id.slice(9, 13), 16));
}

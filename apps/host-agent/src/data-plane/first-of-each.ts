/**
 * Remembers which keys it has admitted, up to `max`: `admit` is true the first
 * time a key is seen. Past `max` keys it forgets them all and starts over, so
 * its memory stays bounded and a key may be admitted again after a reset.
 */
export class FirstOfEach {
  private readonly seen = new Set<string>();

  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`max must be a positive integer, got ${max}`);
  }

  admit(key: string): boolean {
    if (this.seen.has(key)) return false;
    if (this.seen.size >= this.max) this.seen.clear();
    this.seen.add(key);
    return true;
  }

  get size(): number {
    return this.seen.size;
  }
}

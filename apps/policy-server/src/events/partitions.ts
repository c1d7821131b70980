// Daily partitions of block_events: names, bounds and which to keep.
const DAY_MS = 86_400_000;

/** UTC day number (days since 1970-01-01) of a time. */
export const dayOf = (ms: number): number => Math.floor(ms / DAY_MS);

export function partitionName(day: number): string {
  return `block_events_p${new Date(day * DAY_MS).toISOString().slice(0, 10).replaceAll('-', '')}`;
}

/** The day a partition name stands for, or undefined for other tables (the default partition). */
export function dayOfPartition(name: string): number | undefined {
  const m = /^block_events_p(\d{4})(\d{2})(\d{2})$/.exec(name);
  return m ? dayOf(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]))) : undefined;
}

export const dayStart = (day: number): string => new Date(day * DAY_MS).toISOString();

/** Days kept: partitions for days before `today - retentionDays` are dropped. */
export function firstKeptDay(today: number, retentionDays: number): number {
  return today - retentionDays;
}

import { PipeTransform } from '@nestjs/common';
import type { ZodType } from 'zod';
import { DomainError } from './errors';

/** Validates query parameters against a zod schema; a 400 names each bad (or unknown) parameter. */
export class ZodQueryPipe<T> implements PipeTransform<unknown, T> {
  constructor(private readonly schema: ZodType<T>) {}

  transform(value: unknown): T {
    const parsed = this.schema.safeParse(value ?? {});
    if (parsed.success) return parsed.data;
    const problems = parsed.error.issues.flatMap((i) =>
      i.code === 'unrecognized_keys'
        ? i.keys.map((k) => ({ field: k, reason: 'unknown query parameter' }))
        : [{ field: i.path.length > 0 ? i.path.join('.') : '(query)', reason: i.message }],
    );
    const summary = problems.map((p) => `${p.field}: ${p.reason}`).join('; ');
    throw new DomainError('validation.failed', `invalid query: ${summary}`, problems);
  }
}

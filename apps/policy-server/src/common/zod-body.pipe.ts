import { PipeTransform } from '@nestjs/common';
import type { ZodType } from 'zod';
import { DomainError } from './errors';

/** Validates a request body against a zod schema; errors name each field. */
export class ZodBodyPipe<T> implements PipeTransform<unknown, T> {
  constructor(private readonly schema: ZodType<T>) {}

  transform(value: unknown): T {
    const parsed = this.schema.safeParse(value);
    if (parsed.success) return parsed.data;
    const problems = parsed.error.issues.map((i) => ({
      field: i.path.length > 0 ? i.path.join('.') : '(body)',
      reason: i.message,
    }));
    const summary = problems.map((p) => `${p.field}: ${p.reason}`).join('; ');
    throw new DomainError('validation.failed', `invalid request body: ${summary}`, problems);
  }
}

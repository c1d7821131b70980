import type { ApiErrorCode } from '@cgfence/proto';

/**
 * Domain errors carry a string code (the list is ERROR_CODES in
 * libs/proto/src/api/common.ts, shown in the error body); each transport maps
 * codes to its own statuses (see http-error.filter.ts), with an exhaustive
 * check so a new code cannot be forgotten.
 */
export type ErrorCode = Exclude<ApiErrorCode, 'internal'>;

export class DomainError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'DomainError';
  }
}

/**
 * Domain errors carry a string code; each transport maps codes to its own
 * statuses (see http-error.filter.ts), with an exhaustive check so a new code
 * cannot be forgotten.
 */
export type ErrorCode =
  | 'validation.failed'
  | 'entries.invalid'
  | 'entries.too_many'
  | 'blocklist.not_found'
  | 'blocklist.already_exists'
  | 'version.not_found'
  | 'version.conflict'
  | 'stream.conflict'
  | 'token.not_found'
  | 'fleet.rollback_required'
  | 'host.not_found'
  | 'rollout.not_found'
  | 'run.not_found'
  | 'rollout.invalid_plan'
  | 'rollout.active_exists'
  | 'rollout.state_conflict'
  | 'rollout.stage_moved'
  | 'finding.not_found'
  | 'finding.state_conflict'
  | 'owner.not_found'
  | 'delivery.not_found'
  | 'auth.missing_token'
  | 'auth.invalid_token'
  | 'auth.forbidden';

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

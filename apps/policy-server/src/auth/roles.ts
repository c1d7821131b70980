import { SetMetadata } from '@nestjs/common';
import type { Role } from '@cgfence/proto';

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

/** True when `held` is at least `needed` (viewer < operator < admin). */
export function roleAllows(held: Role, needed: Role): boolean {
  return RANK[held] >= RANK[needed];
}

export const MIN_ROLE = 'cgfence:min-role';
export const PUBLIC = 'cgfence:public';

/** The least role a route needs. Routes without it need viewer. */
export const RequireRole = (role: Role) => SetMetadata(MIN_ROLE, role);
/** Health, readiness, metrics and docs: no token needed. */
export const Public = () => SetMetadata(PUBLIC, true);

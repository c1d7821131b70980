import type { Request } from 'express';
import type { Role } from '@cgfence/proto';

/** Who is calling: set by the auth guard from the bearer token. */
export interface Principal {
  tokenId: string;
  name: string;
  role: Role;
}

export interface CgfenceRequest extends Request {
  correlationId?: string;
  principal?: Principal;
}

/** The metadata every appended event carries. */
export interface Actor {
  actor: string;
  tokenId?: string;
  correlationId: string;
}

export function actorOf(req: CgfenceRequest): Actor {
  return {
    actor: req.principal ? req.principal.name : 'anonymous',
    tokenId: req.principal?.tokenId,
    correlationId: req.correlationId ?? 'none',
  };
}

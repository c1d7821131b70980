import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Role } from '@cgfence/proto';
import { DomainError } from '../common/errors';
import type { CgfenceRequest } from '../common/request-context';
import { MIN_ROLE, PUBLIC, roleAllows } from './roles';
import { TokensService } from './tokens.service';

/** Every route needs a valid token of at least its role, unless marked public. */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly tokens: TokensService,
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    // NATS handlers: who may send what is settled by the NATS permissions of
    // each host's credentials (the host id is part of the subject).
    if (ctx.getType() !== 'http') return true;
    const targets = [ctx.getHandler(), ctx.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC, targets)) return true;
    const req = ctx.switchToHttp().getRequest<CgfenceRequest>();
    const header = req.header('authorization');
    const match = header ? /^Bearer\s+(\S+)$/i.exec(header) : null;
    const principal = await this.tokens.authenticate(match?.[1]);
    const needed = this.reflector.getAllAndOverride<Role | undefined>(MIN_ROLE, targets) ?? 'viewer';
    if (!roleAllows(principal.role, needed)) {
      throw new DomainError('auth.forbidden', `this needs the ${needed} role; token "${principal.name}" has ${principal.role}`);
    }
    req.principal = principal;
    return true;
  }
}

import { Body, Controller, Delete, Get, Param, Post, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { CreateTokenRequest, IdParams, IssuedToken, IssuedTokenSchema, TokenView, TokenViewSchema } from '@cgfence/proto';
import { Contract } from '../common/contract';
import { actorOf, CgfenceRequest } from '../common/request-context';
import { RequireRole } from './roles';
import { TokensService } from './tokens.service';

@ApiTags('tokens')
@ApiBearerAuth()
@RequireRole('admin')
@Controller('tokens')
export class TokensController {
  constructor(private readonly tokens: TokensService) {}

  @Post()
  @ApiOperation({ summary: 'Issue an API token (the secret is shown once)' })
  @Contract({ body: { json: CreateTokenRequest }, responses: [{ status: 201, json: IssuedTokenSchema }] })
  issue(@Body() body: CreateTokenRequest, @Req() req: CgfenceRequest): Promise<IssuedToken> {
    return this.tokens.issue(body.name, body.role, actorOf(req));
  }

  @Get()
  @ApiOperation({ summary: 'List API tokens' })
  @Contract({ responses: [{ status: 200, json: z.array(TokenViewSchema) }] })
  list(): Promise<TokenView[]> {
    return this.tokens.list();
  }

  @Delete(':id')
  @ApiOperation({ summary: 'Revoke an API token' })
  @Contract({ params: IdParams, responses: [{ status: 204 }], errors: [404] })
  revoke(@Param('id') id: string, @Req() req: CgfenceRequest): Promise<void> {
    return this.tokens.revoke(id, actorOf(req));
  }
}

import { Body, Controller, Delete, Get, HttpCode, Param, Post, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import { CreateTokenRequest, TokenView } from '@cgfence/proto';
import { toOpenApi } from '../common/openapi-schema';
import { actorOf, CgfenceRequest } from '../common/request-context';
import { ZodBodyPipe } from '../common/zod-body.pipe';
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
  @ApiBody({ schema: toOpenApi(CreateTokenRequest) })
  issue(@Body(new ZodBodyPipe(CreateTokenRequest)) body: CreateTokenRequest, @Req() req: CgfenceRequest): Promise<{ token: TokenView; secret: string }> {
    return this.tokens.issue(body.name, body.role, actorOf(req));
  }

  @Get()
  @ApiOperation({ summary: 'List API tokens' })
  list(): Promise<TokenView[]> {
    return this.tokens.list();
  }

  @Delete(':id')
  @HttpCode(204)
  @ApiOperation({ summary: 'Revoke an API token' })
  revoke(@Param('id') id: string, @Req() req: CgfenceRequest): Promise<void> {
    return this.tokens.revoke(id, actorOf(req));
  }
}

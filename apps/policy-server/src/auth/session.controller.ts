import { Controller, Get, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { CgfenceRequest, Principal } from '../common/request-context';
import { toOpenApi } from '../common/openapi-schema';
import { WhoAmI } from './whoami';

@ApiTags('tokens')
@ApiBearerAuth()
@Controller()
export class SessionController {
  @Get('whoami')
  @ApiOperation({ summary: "The calling token's name and role (the dashboard shows only what that role may do)" })
  @ApiOkResponse({ schema: toOpenApi(WhoAmI) })
  whoami(@Req() req: CgfenceRequest): WhoAmI {
    const p = req.principal as Principal; // the guard set it: this route is not public
    return { tokenId: p.tokenId, name: p.name, role: p.role };
  }
}

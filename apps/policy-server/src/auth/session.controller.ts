import { Controller, Get, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Contract } from '../common/contract';
import type { CgfenceRequest, Principal } from '../common/request-context';
import { WhoAmI } from './whoami';

@ApiTags('tokens')
@ApiBearerAuth()
@Controller()
export class SessionController {
  @Get('whoami')
  @ApiOperation({ summary: "The calling token's name and role (the dashboard shows only what that role may do)" })
  @Contract({ responses: [{ status: 200, json: WhoAmI }] })
  whoami(@Req() req: CgfenceRequest): WhoAmI {
    const p = req.principal as Principal; // the guard set it: this route is not public
    return { tokenId: p.tokenId, name: p.name, role: p.role };
  }
}

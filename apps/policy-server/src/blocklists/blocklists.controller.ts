import { Body, Controller, Get, Header, Param, ParseIntPipe, Post, Query, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiConsumes, ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import {
  BlocklistView,
  CommitRequest,
  CommitResult,
  CreateBlocklistRequest,
  DiffView,
  VersionDetailView,
  VersionView,
} from '@cgfence/proto';
import { RequireRole } from '../auth/roles';
import { DomainError } from '../common/errors';
import { toOpenApi } from '../common/openapi-schema';
import { actorOf, CgfenceRequest } from '../common/request-context';
import { ZodBodyPipe } from '../common/zod-body.pipe';
import { BlocklistsService, CommitInput } from './blocklists.service';

const versionParam = new ParseIntPipe({
  exceptionFactory: (msg) => new DomainError('validation.failed', `version must be a whole number: ${msg}`),
});

@ApiTags('blocklists')
@ApiBearerAuth()
@Controller('blocklists')
export class BlocklistsController {
  constructor(private readonly blocklists: BlocklistsService) {}

  @Post()
  @RequireRole('operator')
  @ApiOperation({ summary: 'Create a blocklist' })
  @ApiBody({ schema: toOpenApi(CreateBlocklistRequest) })
  create(@Body(new ZodBodyPipe(CreateBlocklistRequest)) body: CreateBlocklistRequest, @Req() req: CgfenceRequest): Promise<BlocklistView> {
    return this.blocklists.create(body, actorOf(req));
  }

  @Get()
  @ApiOperation({ summary: 'List blocklists' })
  list(): Promise<BlocklistView[]> {
    return this.blocklists.list();
  }

  @Get(':name')
  @ApiOperation({ summary: 'Show a blocklist' })
  get(@Param('name') name: string): Promise<BlocklistView> {
    return this.blocklists.get(name);
  }

  @Post(':name/versions')
  @RequireRole('operator')
  @ApiOperation({
    summary: 'Commit a new version',
    description:
      'JSON: {entries: [...]} for a whole list, or {add: [...], remove: [...]} for a change to the latest version. ' +
      'text/plain: the blocklist file format (one entry per line, # comments); ?message= and ?expectedVersion= as query parameters.',
  })
  @ApiConsumes('application/json', 'text/plain')
  @ApiBody({ schema: toOpenApi(CommitRequest) })
  @ApiQuery({ name: 'message', required: false })
  @ApiQuery({ name: 'expectedVersion', required: false })
  commit(
    @Param('name') name: string,
    @Body() body: unknown,
    @Req() req: CgfenceRequest,
    @Query('message') message?: string,
    @Query('expectedVersion') expected?: string,
  ): Promise<CommitResult> {
    const input: CommitInput =
      typeof body === 'string'
        ? { kind: 'text', text: body, message: message ?? '', expectedVersion: parseExpected(expected) }
        : { kind: 'json', body: new ZodBodyPipe(CommitRequest).transform(body) };
    return this.blocklists.commit(name, input, actorOf(req));
  }

  @Get(':name/versions')
  @ApiOperation({ summary: 'List the versions of a blocklist' })
  versions(@Param('name') name: string): Promise<VersionView[]> {
    return this.blocklists.versions(name);
  }

  @Get(':name/versions/:version')
  @ApiOperation({ summary: 'Show a version with its entries (?format=text for the canonical file)' })
  @ApiQuery({ name: 'format', required: false, enum: ['json', 'text'] })
  async version(
    @Param('name') name: string,
    @Param('version', versionParam) version: number,
    @Query('format') format: string | undefined,
    @Res({ passthrough: true }) res: Response,
  ): Promise<VersionDetailView | string> {
    if (format === 'text') {
      res.type('text/plain');
      return this.blocklists.versionText(name, version);
    }
    return this.blocklists.version(name, version);
  }

  @Get(':name/diff')
  @Header('Cache-Control', 'no-store')
  @ApiOperation({ summary: 'Entries added and removed between two versions' })
  @ApiQuery({ name: 'from', required: true })
  @ApiQuery({ name: 'to', required: true })
  diff(@Param('name') name: string, @Query('from', versionParam) from: number, @Query('to', versionParam) to: number): Promise<DiffView> {
    return this.blocklists.diff(name, from, to);
  }
}

function parseExpected(raw: string | undefined): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d+$/.test(raw)) throw new DomainError('validation.failed', `expectedVersion must be a whole number, got "${raw}"`);
  return Number(raw);
}

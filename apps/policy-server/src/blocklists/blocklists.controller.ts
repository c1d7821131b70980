import { Body, Controller, Get, Header, Param, Post, Query, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { z } from 'zod';
import {
  BlocklistView,
  BlocklistViewSchema,
  CommitRequest,
  CommitResult,
  CommitResultSchema,
  CreateBlocklistRequest,
  DiffViewSchema,
  int32,
  NameParams,
  VersionDetailViewSchema,
  VersionNumber,
  VersionView,
  VersionViewSchema,
} from '@cgfence/proto';
import { RequireRole } from '../auth/roles';
import { Contract } from '../common/contract';
import { RawBody } from '../common/edge';
import { DomainError } from '../common/errors';
import { actorOf, CgfenceRequest } from '../common/request-context';
import { BlocklistsService, CommitInput } from './blocklists.service';

const NameVersionParams = NameParams.extend({ version: VersionNumber }).strict();
const CommitQuery = z
  .object({
    /** text/plain commits only: the commit message. */
    message: z.string().max(2000).optional(),
    /** text/plain commits only: the latest version the author saw (409 if another landed since). */
    expectedVersion: int32(0).optional(),
  })
  .strict();
const VersionQuery = z.object({ format: z.enum(['json', 'text']).optional() }).strict();
/** Version 0 is the empty list before the first commit. */
const DiffQuery = z.object({ from: int32(0), to: int32(0) }).strict();

@ApiTags('blocklists')
@ApiBearerAuth()
@Controller('blocklists')
export class BlocklistsController {
  constructor(private readonly blocklists: BlocklistsService) {}

  @Post()
  @RequireRole('operator')
  @ApiOperation({ summary: 'Create a blocklist' })
  @Contract({ body: { json: CreateBlocklistRequest }, responses: [{ status: 201, json: BlocklistViewSchema }], errors: [409] })
  create(@Body() body: CreateBlocklistRequest, @Req() req: CgfenceRequest): Promise<BlocklistView> {
    return this.blocklists.create(body, actorOf(req));
  }

  @Get()
  @ApiOperation({ summary: 'List blocklists' })
  @Contract({ responses: [{ status: 200, json: z.array(BlocklistViewSchema) }] })
  list(): Promise<BlocklistView[]> {
    return this.blocklists.list();
  }

  @Get(':name')
  @ApiOperation({ summary: 'Show a blocklist' })
  @Contract({ params: NameParams, responses: [{ status: 200, json: BlocklistViewSchema }], errors: [404] })
  get(@Param('name') name: string): Promise<BlocklistView> {
    return this.blocklists.get(name);
  }

  @Post(':name/versions')
  @RequireRole('operator')
  @ApiOperation({
    summary: 'Commit a new version',
    description:
      'JSON: {entries: [...]} for a whole list, or {add: [...], remove: [...]} for a change to the latest version. ' +
      'text/plain: the blocklist file format (one entry per line, # comments); ?message= and ?expectedVersion= as query parameters. ' +
      'Answers 201 when a version was written, 200 when the content equals the latest version (nothing written).',
  })
  @Contract({
    params: NameParams,
    query: CommitQuery,
    body: { json: CommitRequest, text: { description: 'The blocklist file format: one entry per line, # starts a comment (UTF-8).' }, large: true, offThread: true },
    responses: [
      { status: 201, json: CommitResultSchema, description: 'A new version was written' },
      { status: 200, json: CommitResultSchema, description: 'The content equals the latest version: nothing was written (created: false)' },
    ],
    errors: [404, 409, 503],
  })
  async commit(
    @Param('name') name: string,
    @Body() body: RawBody | undefined,
    @Req() req: CgfenceRequest,
    @Query() q: z.infer<typeof CommitQuery>,
    @Res({ passthrough: true }) res: Response,
  ): Promise<CommitResult> {
    if (body === undefined) throw new DomainError('validation.failed', 'a commit needs a body: JSON {entries} or {add, remove}, or the text/plain file', [{ field: '(body)', reason: 'required' }]);
    const input: CommitInput = { media: body.media, body: body.bytes, message: q.message, expectedVersion: q.expectedVersion };
    const result = await this.blocklists.commit(name, input, actorOf(req));
    if (!result.created) res.status(200);
    return result;
  }

  @Get(':name/versions')
  @ApiOperation({ summary: 'List the versions of a blocklist' })
  @Contract({ params: NameParams, responses: [{ status: 200, json: z.array(VersionViewSchema) }], errors: [404] })
  versions(@Param('name') name: string): Promise<VersionView[]> {
    return this.blocklists.versions(name);
  }

  @Get(':name/versions/:version')
  @ApiOperation({ summary: 'Show a version with its entries (?format=text for the canonical file)' })
  @Contract({
    params: NameVersionParams,
    query: VersionQuery,
    responses: [{ status: 200, json: VersionDetailViewSchema, text: { type: 'text/plain', description: 'The canonical blocklist file (format=text)' } }],
    errors: [404, 503],
  })
  async version(@Param() p: z.infer<typeof NameVersionParams>, @Query() q: z.infer<typeof VersionQuery>, @Res() res: Response): Promise<void> {
    // Big versions are read and written on a worker thread and sent as they are. A version never
    // changes: its ETag is its content hash (Express would otherwise hash the whole body here).
    const format = q.format ?? 'json';
    const body = bytes(await this.blocklists.versionBytes(p.name, p.version, format));
    res.setHeader('ETag', `"${p.version}-${format}-${(await this.blocklists.hashAt(p.name, p.version))!.replace(/^sha256:/, '')}"`);
    res.type(format === 'text' ? 'text/plain' : 'application/json').send(body);
  }

  @Get(':name/diff')
  @Header('Cache-Control', 'no-store')
  @ApiOperation({ summary: 'Entries added and removed between two versions' })
  @Contract({ params: NameParams, query: DiffQuery, responses: [{ status: 200, json: DiffViewSchema }], errors: [404, 503] })
  async diff(@Param('name') name: string, @Query() q: z.infer<typeof DiffQuery>, @Res() res: Response): Promise<void> {
    res.setHeader('Cache-Control', 'no-store');
    // An ETag of its own, so Express does not hash a big body on the event loop.
    const body = bytes(await this.blocklists.diffJson(name, q.from, q.to));
    const [a, b] = await Promise.all([this.blocklists.hashAt(name, q.from), this.blocklists.hashAt(name, q.to)]);
    res.setHeader('ETag', `"diff-${(a ?? 'empty').replace(/^sha256:/, '').slice(0, 32)}-${(b ?? 'empty').replace(/^sha256:/, '').slice(0, 32)}"`);
    res.type('application/json').send(body);
  }
}

/** Bytes from a worker thread as a Buffer over the same memory (Express sends a Buffer as it is). */
function bytes(u8: Uint8Array): Buffer {
  return Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
}

// The OpenAPI document: NestJS's generator gives the paths, operation ids,
// summaries and tags; everything a client needs to call a route (parameters,
// body, every response with its schema, security) comes from the route's
// @Contract, so the document and the edge validation are the same thing.
import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import { ERROR_CODES, ErrorBodySchema, ExportErrorRecordSchema, Role } from '@cgfence/proto';
import { MIN_ROLE, PUBLIC } from '../auth/roles';
import { contracts, inputSchemaOf, outputSchemaOf, RouteContract } from './contract';
import { MAX_QUERY_PARAMS } from './edge';

const METHODS = ['get', 'put', 'post', 'delete', 'patch'] as const;

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'The request is invalid: `validation.failed` (details names every bad field), `request.malformed` (the body is not JSON or not UTF-8), or a rule of the route (`entries.invalid`, `entries.too_many`, `rollout.invalid_plan`).',
  401: 'No token, or a token that is unknown or revoked (`auth.missing_token`, `auth.invalid_token`).',
  403: 'The token\'s role is below what the route needs (`auth.forbidden`); on POST /enroll, the join token is refused (`enroll.token_refused`).',
  404: 'What the path names does not exist (`*.not_found`).',
  409: 'The change conflicts with the current state (`*.conflict`, `*.already_exists`, `rollout.*`, `fleet.rollback_required`, `enroll.host_exists`, `enroll.key_revoked`).',
  413: 'The body is larger than the route accepts (`request.too_large`).',
  415: 'The body is not a media type the route takes, or not UTF-8 (`request.unsupported_media_type`).',
  503: 'Not ready, or a part this route needs is missing (`enroll.not_configured`, `nats.unavailable`), or the server is busy with big blocklist work (`server.busy`, with Retry-After: ask again then).',
};

const DESCRIPTION = `Versioned blocklists for deploy cgroups, rolled out to host cohorts.

Every request is checked against this document before anything runs: strings (in the path, the query and the body) must be valid UTF-8 without NUL characters or unpaired surrogates; numbers must lie in the documented ranges; a query parameter may appear once unless its schema is an array (give it once per value), nested parameters (\`a[b]=\`) are refused, unknown ones too, and at most ${MAX_QUERY_PARAMS} are accepted. Authentication comes before the body is read. Every error answers with the ErrorBody schema; its \`code\` is one of: ${ERROR_CODES.join(', ')}. A method a path does not take answers 405 (\`request.method_not_allowed\`, with an Allow header), a path no route has answers 404 (\`route.not_found\`).`;

type Operation = Record<string, unknown> & { operationId?: string; responses?: unknown; parameters?: unknown[] };

/** Builds the document; throws when a route has no @Contract or its contract misses a path parameter. */
export function buildOpenApiDocument(app: INestApplication): OpenAPIObject {
  const base = new DocumentBuilder().setTitle('cgfence policy server').setDescription(DESCRIPTION).setVersion('0.1.0').addBearerAuth().build();
  const doc = SwaggerModule.createDocument(app, base);
  doc.components = doc.components ?? {};
  doc.components.schemas = {
    ...doc.components.schemas,
    ErrorBody: outputSchemaOf(ErrorBodySchema),
    ExportErrorRecord: outputSchemaOf(ExportErrorRecordSchema),
  };
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of METHODS) {
      const op = (item as Record<string, Operation | undefined>)[method];
      if (!op) continue;
      const entry = op.operationId ? contracts.get(op.operationId) : undefined;
      if (!entry) throw new Error(`${method.toUpperCase()} ${path} (${op.operationId}) has no @Contract`);
      const isPublic = Reflect.getMetadata(PUBLIC, entry.handler) === true || Reflect.getMetadata(PUBLIC, entry.controller) === true;
      const role = (Reflect.getMetadata(MIN_ROLE, entry.handler) ?? Reflect.getMetadata(MIN_ROLE, entry.controller) ?? 'viewer') as Role;
      applyContract(op, entry.contract, path, isPublic, role);
    }
  }
  return doc;
}

function applyContract(op: Operation, c: RouteContract, path: string, isPublic: boolean, role: Role): void {
  const parameters: Record<string, unknown>[] = [];
  const placeholders = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!);
  for (const name of placeholders) {
    const field = c.params?.shape[name];
    if (!field) throw new Error(`${path}: the contract has no schema for the path parameter ${name}`);
    parameters.push({ name, in: 'path', required: true, schema: inputSchemaOf(field) });
  }
  for (const [name, field] of Object.entries(c.query?.shape ?? {})) {
    const schema = inputSchemaOf(field);
    const description = (field as { description?: string }).description ?? (schema.description as string | undefined);
    parameters.push({
      name,
      in: 'query',
      required: !field.safeParse(undefined).success,
      schema,
      ...(description ? { description } : {}),
      ...(schema.type === 'array' ? { style: 'form', explode: true } : {}),
    });
  }
  op.parameters = parameters;

  if (c.body) {
    const content: Record<string, unknown> = {};
    if (c.body.json) content['application/json'] = { schema: inputSchemaOf(c.body.json) };
    if (c.body.text) content['text/plain'] = { schema: { type: 'string', description: c.body.text.description } };
    op.requestBody = { required: !(c.body.json?.safeParse(undefined).success ?? false), content };
  } else {
    delete op.requestBody;
  }

  const responses: Record<string, unknown> = {};
  for (const r of c.responses) {
    const content: Record<string, unknown> = {};
    if (r.json) content['application/json'] = { schema: outputSchemaOf(r.json) };
    if (r.text) content[r.text.type] = { schema: { type: 'string', description: r.text.description } };
    for (const [type, description] of Object.entries(r.other ?? {})) content[type] = { schema: { type: 'string', description } };
    responses[String(r.status)] = {
      description: r.description ?? (r.status === 201 ? 'Created' : r.status === 204 ? 'Done, nothing to say' : 'OK'),
      ...(Object.keys(content).length > 0 ? { content } : {}),
    };
  }
  const errors = new Set<number>([400, ...(c.errors ?? [])]);
  if (!isPublic) {
    errors.add(401);
    if (role !== 'viewer') errors.add(403);
  }
  if (c.body) {
    errors.add(413);
    errors.add(415);
  }
  for (const status of [...errors].sort()) {
    if (responses[String(status)]) continue; // /ready's 503 is its own body
    responses[String(status)] = {
      description: ERROR_DESCRIPTIONS[status] ?? 'Error',
      content: { 'application/json': { schema: { $ref: '#/components/schemas/ErrorBody' } } },
    };
  }
  op.responses = responses;
  op.security = isPublic ? [] : [{ bearer: [] }];
}

/** Which methods each documented path takes, for 405 answers. */
export class RouteTable {
  private readonly routes: { pattern: RegExp; methods: string[] }[];

  constructor(doc: OpenAPIObject) {
    this.routes = Object.entries(doc.paths).map(([path, item]) => {
      const pattern = new RegExp(`^${path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+')}/?$`);
      const methods = METHODS.filter((m) => (item as Record<string, unknown>)[m]).map((m) => m.toUpperCase());
      if (methods.includes('GET')) methods.push('HEAD');
      return { pattern, methods };
    });
  }

  methodsFor(path: string): string[] {
    return [...new Set(this.routes.filter((r) => r.pattern.test(path)).flatMap((r) => r.methods))];
  }
}

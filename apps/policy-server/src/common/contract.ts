// The REST contract of one route, declared once with @Contract: its path
// parameters, query and body as zod schemas, its success response and the
// error statuses it can answer with. The edge (edge.interceptor.ts) validates
// every request against it, and the OpenAPI document (openapi.ts) is
// generated from it, so the two cannot disagree. See docs/architecture.md,
// "How to add a route".
import { HttpCode, SetMetadata } from '@nestjs/common';
import { z, ZodObject, ZodType } from 'zod';

/** What the body of a route may be. */
export interface BodyContract {
  /** application/json bodies are validated with this schema. */
  json?: ZodType;
  /** text/plain (UTF-8) bodies are accepted and handed over as one string. */
  text?: { description: string };
  /** The large body limit (CGFENCE_MAX_COMMIT_BODY) instead of the default (CGFENCE_MAX_BODY). */
  large?: boolean;
  /**
   * Bodies (JSON and text) are read as bytes and handed over as RawBody, for
   * the route's service to decode and check (checkJsonText with the `json`
   * schema) on a worker thread: a 1,000,000-entry commit is never decoded,
   * scanned or parsed on the event loop.
   */
  offThread?: boolean;
  /** A request without a body is validated as `undefined` (refused unless the schema allows it). */
}

/** A success answer. */
export interface SuccessContract {
  status: 200 | 201 | 204 | 503;
  description?: string;
  /** The JSON body, or text with its media type, or a streamed export in several media types. */
  json?: ZodType;
  text?: { type: string; description: string };
  /** Further media types of the same status (exports): media type → description. */
  other?: Record<string, string>;
}

export interface RouteContract {
  /** Path parameters by name (every `:name` of the route). */
  params?: ZodObject;
  /** Query parameters: a strict object; numbers and booleans arrive converted, arrays only where the schema says array. */
  query?: ZodObject;
  body?: BodyContract;
  /** The main answer first; a route that answers 200 or 201 lists both. */
  responses: [SuccessContract, ...SuccessContract[]];
  /**
   * Error statuses the route's own rules can answer with (404, 409, 503, and
   * 403 where a public route refuses its own credential, as POST /enroll
   * does); 400, 401, 403 (role), 413 and 415 are added from the rest.
   */
  errors?: (403 | 404 | 409 | 503)[];
}

export const CONTRACT = Symbol('cgfence:contract');

/** Every route with a contract, by the operation id NestJS's OpenAPI generator gives it (`Controller_method`). */
export const contracts = new Map<string, { contract: RouteContract; controller: object; handler: object }>();

/** Declares a route's contract; the edge validates against it and the OpenAPI document shows it. */
export function Contract(contract: RouteContract): MethodDecorator {
  return (target, key, descriptor) => {
    const handler = descriptor.value as object;
    contracts.set(`${target.constructor.name}_${String(key)}`, { contract, controller: target.constructor, handler });
    SetMetadata(CONTRACT, contract)(target, key, descriptor);
    HttpCode(contract.responses[0].status)(target, key, descriptor);
  };
}

/** The OpenAPI 3.0 schema of what a zod schema accepts (its input). */
export function inputSchemaOf(schema: ZodType): { type?: string; items?: { type?: string } } & Record<string, unknown> {
  return z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'input', unrepresentable: 'any' }) as { type?: string };
}

/** The OpenAPI 3.0 schema of what a zod schema produces (a response body). */
export function outputSchemaOf(schema: ZodType): Record<string, unknown> {
  return z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'output', unrepresentable: 'any' }) as Record<string, unknown>;
}

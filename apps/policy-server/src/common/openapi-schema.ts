import { z, ZodType } from 'zod';
import type { ApiBody } from '@nestjs/swagger';

type BodySchema = Extract<Parameters<typeof ApiBody>[0], { schema: unknown }>['schema'];

/** The OpenAPI 3.0 schema of a request body, generated from its zod schema. */
export function toOpenApi(schema: ZodType): BodySchema {
  return z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'input', unrepresentable: 'any' }) as BodySchema;
}

import Ajv, { ValidateFunction } from 'ajv';

/** The parts of an OpenAPI 3.0 document the checker reads. */
export interface OpenApiDoc {
  paths: Record<string, Record<string, OpenApiOperation>>;
  components: { schemas: Record<string, unknown> };
}

export interface OpenApiOperation {
  operationId: string;
  parameters?: { name: string; in: 'path' | 'query'; required: boolean; schema: Record<string, unknown> }[];
  requestBody?: { required: boolean; content: Record<string, { schema: Record<string, unknown> }> };
  responses: Record<string, { content?: Record<string, { schema: Record<string, unknown> }> }>;
  security?: unknown[];
}

/**
 * Checks real answers against the server's own OpenAPI document: the status
 * must be one the operation lists, and a JSON body must match that status's
 * schema. Collects every operation and status seen, so a test can tell what
 * it has not exercised.
 */
export class ContractChecker {
  private readonly ajv = new Ajv({ strict: false, allErrors: true });
  private readonly compiled = new Map<string, ValidateFunction>();
  readonly seen = new Map<string, Set<number>>();
  private readonly routes: { pattern: RegExp; path: string }[];

  constructor(readonly doc: OpenApiDoc) {
    // $ref: '#/components/schemas/X' resolves against the document itself.
    this.ajv.addSchema({ components: doc.components }, 'doc');
    this.routes = Object.keys(doc.paths).map((path) => ({
      path,
      pattern: new RegExp(`^${path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+')}$`),
    }));
  }

  /** The documented path template of a concrete path (`/blocklists/x` → `/blocklists/{name}`); exact templates win. */
  templateOf(path: string): string | undefined {
    const matches = this.routes.filter((r) => r.pattern.test(path)).map((r) => r.path);
    return matches.sort((a, b) => (a.match(/\{/g)?.length ?? 0) - (b.match(/\{/g)?.length ?? 0))[0];
  }

  /** Problems with one answer (empty when it is what the document promises). */
  check(method: string, url: string, status: number, contentType: string | undefined, body: unknown): string[] {
    const path = url.split('?')[0]!;
    const template = this.templateOf(path);
    if (!template) return status === 404 || status === 405 ? this.checkError(status, body) : [`${method} ${path}: no documented path`];
    const op = this.doc.paths[template]?.[method.toLowerCase()];
    if (!op) return status === 405 ? this.checkError(status, body) : [`${method} ${template}: method not documented, answered ${status}`];
    const key = `${method.toUpperCase()} ${template}`;
    if (!this.seen.has(key)) this.seen.set(key, new Set());
    this.seen.get(key)!.add(status);
    const response = op.responses[String(status)];
    if (!response) return [`${key}: answered ${status}, the document lists ${Object.keys(op.responses).join(', ')}`];
    if (!response.content) return [];
    const media = (contentType ?? '').split(';')[0]!.trim();
    const entry = response.content[media];
    if (!entry) return [`${key} ${status}: answered ${media || 'no content type'}, the document lists ${Object.keys(response.content).join(', ')}`];
    if (media !== 'application/json') return [];
    const validate = this.validator(`${key} ${status}`, entry.schema);
    return validate(body) ? [] : [`${key} ${status}: body does not match its schema: ${this.ajv.errorsText(validate.errors)} in ${JSON.stringify(body).slice(0, 300)}`];
  }

  private checkError(status: number, body: unknown): string[] {
    const validate = this.validator('ErrorBody', { $ref: 'doc#/components/schemas/ErrorBody' });
    return validate(body) ? [] : [`${status}: error body does not match ErrorBody: ${this.ajv.errorsText(validate.errors)}`];
  }

  private validator(key: string, schema: Record<string, unknown>): ValidateFunction {
    let v = this.compiled.get(key);
    if (!v) {
      const rewritten = JSON.parse(JSON.stringify(schema).replace(/"#\/components\//g, '"doc#/components/')) as Record<string, unknown>;
      v = this.ajv.compile(rewritten);
      this.compiled.set(key, v);
    }
    return v;
  }
}

import type { ErrorBody } from '@cgfence/proto';
import { CliError } from '../errors';

export interface ClientOptions {
  server: string;
  token?: string;
}

/** A thin HTTP client of the policy server's REST API. */
export class ApiClient {
  constructor(private readonly opts: ClientOptions) {}

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  getText(path: string): Promise<string> {
    return this.request<string>('GET', path, undefined, 'text');
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('POST', path, { type: 'application/json', data: JSON.stringify(body) });
  }

  postText<T>(path: string, text: string): Promise<T> {
    return this.request<T>('POST', path, { type: 'text/plain', data: text });
  }

  delete(path: string): Promise<void> {
    return this.request<void>('DELETE', path);
  }

  private async request<T>(method: string, path: string, body?: { type: string; data: string }, expect: 'json' | 'text' = 'json'): Promise<T> {
    const url = new URL(path, this.opts.server.endsWith('/') ? this.opts.server : `${this.opts.server}/`);
    const headers: Record<string, string> = { Accept: expect === 'json' ? 'application/json' : 'text/plain' };
    if (this.opts.token) headers['Authorization'] = `Bearer ${this.opts.token}`;
    if (body) headers['Content-Type'] = body.type;
    let res: Response;
    try {
      res = await fetch(url, { method, headers, body: body?.data });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new CliError(`cannot reach the policy server at ${this.opts.server}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
    }
    if (res.status === 204) return undefined as T;
    const raw = await res.text();
    if (!res.ok) throw errorFrom(res.status, raw, this.opts.token === undefined);
    if (expect === 'text') return raw as T;
    try {
      return JSON.parse(raw) as T;
    } catch {
      throw new CliError(`the server answered ${res.status} with something that is not JSON: ${raw.slice(0, 200)}`);
    }
  }
}

function errorFrom(status: number, raw: string, noToken: boolean): CliError {
  let body: Partial<ErrorBody> = {};
  try {
    body = JSON.parse(raw) as ErrorBody;
  } catch {
    return new CliError(`server error ${status}: ${raw.slice(0, 300)}`);
  }
  const details: string[] = [];
  if (Array.isArray(body.details)) {
    for (const d of body.details as Record<string, unknown>[]) {
      if ('line' in d) details.push(`line ${String(d['line'])}: ${String(d['entry'])}: ${String(d['reason'])}`);
      else if ('field' in d) details.push(`${String(d['field'])}: ${String(d['reason'])}`);
      else details.push(JSON.stringify(d));
    }
  }
  // The server's message repeats each field problem after a colon ("invalid query: a: x; b: y"):
  // with the details listed below it, print only its first part.
  const headline = details.length > 0 && body.message?.includes(': ') ? body.message.slice(0, body.message.indexOf(': ')) : body.message;
  let message = `${headline ?? `server error ${status}`} [${body.code ?? status}]`;
  if (status === 401 && noToken) message += ' — pass --token or set CGFENCE_TOKEN';
  return new CliError(message, 1, details);
}

import createClient, { type Middleware } from 'openapi-fetch';
import type { paths } from './generated/openapi';

/** The browser session's API token (sessionStorage: gone when the tab closes). */
const TOKEN_KEY = 'cgfence.token';
export const session = {
  get token(): string | null {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set(token: string): void {
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  clear(): void {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

/** The project's error body (every 4xx/5xx of the API). */
export interface ErrorBody {
  statusCode: number;
  code: string;
  message: string;
  correlationId?: string;
  details?: unknown;
}

export class ApiError extends Error {
  constructor(readonly body: ErrorBody) {
    super(body.message);
  }
}

function asErrorBody(status: number, body: unknown): ErrorBody {
  if (body && typeof body === 'object' && 'code' in body && 'message' in body) return body as ErrorBody;
  return { statusCode: status, code: `http.${status}`, message: typeof body === 'string' && body ? body : `the server answered ${status}` };
}

const auth: Middleware = {
  onRequest({ request }) {
    const t = session.token;
    if (t) request.headers.set('Authorization', `Bearer ${t}`);
    request.headers.set('Accept', 'application/json');
    return request;
  },
};

/** The API client, typed by the server's OpenAPI document (generated at build time). */
export const api = createClient<paths>({ baseUrl: window.location.origin });
api.use(auth);

/** The data of a response, or an ApiError carrying the server's error body. */
export async function ok<T>(p: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<Exclude<T, string>> {
  const r = await p;
  if (!r.response.ok) {
    const err = new ApiError(asErrorBody(r.response.status, r.error));
    if (r.response.status === 401) window.dispatchEvent(new CustomEvent('cgfence:unauthorized'));
    throw err;
  }
  // A route that can also answer text (exports, ?format=text) answers JSON when not asked otherwise.
  return r.data as Exclude<T, string>;
}

/** Where a link downloads the current History filter as CSV or NDJSON (with the token: a fetch, then a blob). */
export async function download(path: string, filename: string): Promise<void> {
  const res = await fetch(path, { headers: { Authorization: `Bearer ${session.token ?? ''}` } });
  if (!res.ok) throw new ApiError(asErrorBody(res.status, await res.json().catch(() => undefined)));
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  a.click();
  URL.revokeObjectURL(url);
}

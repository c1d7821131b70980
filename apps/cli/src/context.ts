import type { Command } from 'commander';
import { readFileSync, statSync } from 'node:fs';
import { ApiClient } from './client/api-client';
import { CliError, EXIT_USAGE } from './errors';

export interface GlobalOptions {
  server: string;
  token?: string;
  tokenFile?: string;
  json: boolean;
}

export const DEFAULT_SERVER = 'http://127.0.0.1:28080';

/** The global options of any (sub)command, whatever depth it sits at. */
export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals<GlobalOptions>();
}

/** The token from --token, or else from --token-file: a file named but missing, unreadable or empty is a usage error. */
export function tokenOf(g: Pick<GlobalOptions, 'token' | 'tokenFile'>): string | undefined {
  if (g.token) return g.token;
  if (!g.tokenFile) return undefined; // unset, or CGFENCE_TOKEN_FILE= (empty)
  const file = g.tokenFile;
  let st;
  try {
    st = statSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError(`--token-file ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (err as Error).message}`, EXIT_USAGE);
  }
  if (st.isDirectory()) throw new CliError(`--token-file ${file} is a directory; give the file that holds the token`, EXIT_USAGE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError(`--token-file ${file}: ${code === 'EACCES' ? 'permission denied (the admin token file is readable by root only)' : (err as Error).message}`, EXIT_USAGE);
  }
  if (text === '') throw new CliError(`--token-file ${file} is empty`, EXIT_USAGE);
  if (/\s/.test(text)) throw new CliError(`--token-file ${file} holds more than one word; it should hold only the token`, EXIT_USAGE);
  return text;
}

/** --server as a URL: http(s) only, with its scheme (`127.0.0.1:28080` is refused with a hint). */
export function serverUrlOf(server: string): string {
  const hint = `--server must be a URL like http://127.0.0.1:28080, got "${server}"`;
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(server)) throw new CliError(`${hint} (add http://)`, EXIT_USAGE);
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new CliError(hint, EXIT_USAGE);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CliError(`${hint} (http:// or https://)`, EXIT_USAGE);
  return server;
}

/** An API client from --server/--token (or CGFENCE_SERVER/CGFENCE_TOKEN/CGFENCE_TOKEN_FILE). */
export function client(cmd: Command): ApiClient {
  const g = globals(cmd);
  return new ApiClient({ server: serverUrlOf(g.server), token: tokenOf(g) });
}

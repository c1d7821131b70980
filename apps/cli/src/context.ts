import type { Command } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { ApiClient } from './client/api-client';
import { CliError, EXIT_USAGE } from './errors';

export interface GlobalOptions {
  server: string;
  token?: string;
  tokenFile?: string;
  ca?: string;
  json: boolean;
}

export const DEFAULT_SERVER = 'http://127.0.0.1:28080';

/** The global options of any (sub)command, whatever depth it sits at. */
export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals<GlobalOptions>();
}

/** An API client from --server/--token (or CGFENCE_SERVER/CGFENCE_TOKEN/CGFENCE_TOKEN_FILE). */
export function client(cmd: Command): ApiClient {
  const g = globals(cmd);
  let token = g.token;
  if (!token && g.tokenFile && existsSync(g.tokenFile)) token = readFileSync(g.tokenFile, 'utf8').trim();
  return new ApiClient({ server: g.server, token: token || undefined, ca: readCa(g.ca) });
}

/** The PEM of --ca (CGFENCE_CA), checked; undefined without it. */
export function readCa(file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliError(`--ca ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, EXIT_USAGE);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new CliError(`--ca ${file}: no PEM certificate in it`, EXIT_USAGE);
  return pem;
}

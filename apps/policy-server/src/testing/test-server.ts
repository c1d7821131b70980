import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PostgresServer } from '@cgfence/devservices';
import supertest from 'supertest';
import type { Role } from '@cgfence/proto';
import { loadConfig, ServerConfig } from '../config/config';
import { createServer, StartedServer } from '../server';
import { TokensService } from '../auth/tokens.service';

/**
 * A real PostgreSQL in a temporary directory and a policy server on a free
 * port, for integration tests. `stop()` removes everything it made.
 */
export class TestPolicyServer {
  private constructor(
    readonly dir: string,
    readonly pg: PostgresServer,
    readonly config: ServerConfig,
    public server: StartedServer,
    readonly adminSecret: string,
  ) {}

  static async start(name: string, opts: { natsUrl?: string; env?: Record<string, string> } = {}): Promise<TestPolicyServer> {
    const dir = mkdtempSync(join(tmpdir(), `cgfence-${name}-`));
    let pg: PostgresServer | undefined;
    try {
      pg = await PostgresServer.start({ dir: join(dir, 'pg'), fast: true });
      const databaseUrl = await pg.createDatabase(name.replace(/[^a-z0-9_]/g, '_'));
      const config = loadConfig({
        CGFENCE_DATABASE_URL: databaseUrl,
        CGFENCE_HTTP_PORT: '0',
        CGFENCE_STATE_DIR: join(dir, 'state'),
        CGFENCE_LOG_LEVEL: 'silent',
        ...(opts.natsUrl ? { CGFENCE_NATS_URL: opts.natsUrl } : {}),
        ...opts.env,
      });
      const server = await createServer(config);
      if (!server.bootstrapSecret) throw new Error('expected a bootstrap admin token on a fresh database');
      return new TestPolicyServer(dir, pg, config, server, server.bootstrapSecret);
    } catch (err) {
      await pg?.stop();
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  get http(): ReturnType<typeof supertest> {
    return supertest(this.server.app.getHttpServer());
  }

  /** Issues a token of the given role and returns its secret. */
  async tokenFor(role: Role, name = `${role}-user`): Promise<string> {
    const { secret } = await this.server.app.get(TokensService).issue(name, role, { actor: 'test', correlationId: 'test' });
    return secret;
  }

  get<T>(cls: new (...args: never[]) => T): T {
    return this.server.app.get(cls);
  }

  /** Restarts the server process state on the same database. */
  async restart(): Promise<void> {
    await this.server.close();
    this.server = await createServer(this.config);
  }

  /** Another server process state on the same database, NATS and state directory (a second replica). */
  async replica(): Promise<StartedServer> {
    return createServer(this.config);
  }

  /** Stops the server (waiting at most 15 s for it), then PostgreSQL, whatever happens. */
  async stop(): Promise<void> {
    try {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, 15_000)));
      await Promise.race([this.server.close().catch(() => undefined), late]);
      clearTimeout(timer);
    } finally {
      await this.pg.stop();
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

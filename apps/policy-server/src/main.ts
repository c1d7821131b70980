import 'reflect-metadata';
import { Command, CommanderError } from 'commander';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from './app.module';
import { BOOTSTRAP_TOKEN_FILE } from './auth/tokens.service';
import { ConfigError, loadConfig, ServerConfig } from './config/config';
import { ReadModels } from './read-models/read-models.service';
import { offlineOpenApiDocument } from './openapi';
import { createServer } from './server';

/**
 * The policy server process:
 *   serve                  run the API (migrations run first)
 *   migrate [up|down]      apply all pending migrations, or undo the last one
 *   openapi [file]         write the OpenAPI document (no database needed)
 *   rebuild-projections    drop every read model and rebuild it from the events
 */
async function withDataSource<T>(config: ServerConfig, fn: (ds: DataSource) => Promise<T>): Promise<T> {
  const ds = await new DataSource(dataSourceOptions(config)).initialize();
  try {
    return await fn(ds);
  } finally {
    await ds.destroy();
  }
}

async function main(argv: string[]): Promise<number> {
  const program = new Command('cgfence-policy-server').exitOverride().description('cgfence policy server');
  let exitCode = 0;
  program
    .command('serve', { isDefault: true })
    .description('serve the REST API (configuration from CGFENCE_* environment variables; see docs/operations.md)')
    .action(async () => {
      const config = loadConfig();
      const server = await createServer(config);
      server.logger.info({ url: server.url, docs: `${server.url}/docs` }, 'policy server listening');
      if (server.bootstrapSecret) {
        server.logger.warn({ file: join(config.stateDir, BOOTSTRAP_TOKEN_FILE) }, 'created the bootstrap admin token');
      }
      await new Promise<void>((resolve) => {
        const stop = () => void server.close().then(resolve);
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });
  program
    .command('migrate')
    .argument('[direction]', 'up (default) or down (undo the last migration)', 'up')
    .description('run database migrations')
    .action(async (direction: string) => {
      if (direction !== 'up' && direction !== 'down') throw new ConfigError(`migrate: direction must be "up" or "down", got "${direction}"`);
      const config = loadConfig();
      await withDataSource(config, async (ds) => {
        if (direction === 'up') {
          const ran = await ds.runMigrations({ transaction: 'each' });
          console.log(ran.length ? `applied: ${ran.map((m) => m.name).join(', ')}` : 'database is up to date');
        } else {
          await ds.undoLastMigration({ transaction: 'each' });
          console.log('undid the last migration');
        }
      });
    });
  program
    .command('openapi')
    .argument('[file]', 'where to write it (default: standard output)')
    .description('write the OpenAPI document of the REST API, without a database or NATS')
    .action(async (file: string | undefined) => {
      // Only the shape of the configuration matters here: nothing connects.
      const config = loadConfig({ CGFENCE_DATABASE_URL: 'postgres://offline.invalid/openapi', CGFENCE_STATE_DIR: tmpdir() });
      const text = `${JSON.stringify(await offlineOpenApiDocument(config), null, 2)}\n`;
      if (file) writeFileSync(file, text);
      else process.stdout.write(text);
    });
  program
    .command('rebuild-projections')
    .description('drop every read model and rebuild it from the event store')
    .action(async () => {
      const config = loadConfig();
      const server = await createServer({ ...config, bootstrapAdmin: false }, { listen: false });
      try {
        const result = await server.app.get(ReadModels).rebuild();
        console.log(`rebuilt ${result.tables.join(', ')} from ${result.events} events`);
      } finally {
        await server.close();
      }
    });
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    if (err instanceof ConfigError) {
      console.error(err.message);
      return 2;
    }
    console.error(err instanceof Error ? err.stack ?? err.message : String(err));
    exitCode = 1;
  }
  return exitCode;
}

void main(process.argv).then((code) => {
  process.exitCode = code;
});

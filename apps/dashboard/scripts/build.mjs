#!/usr/bin/env node
// Builds the dashboard (called by scripts/build.mjs after the TypeScript build):
//   1. the policy server writes its OpenAPI document (no database needed),
//   2. openapi-typescript turns it into src/api/generated/openapi.d.ts,
//   3. the TypeScript compiler checks the dashboard against it (a contract
//      change the dashboard does not follow fails here),
//   4. Vite bundles it into dist/web, which the server serves at /.
// Skipped when neither the document nor the dashboard's sources changed.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = join(dirname(fileURLToPath(import.meta.url)), '..');
const root = join(here, '../..');
const generated = join(here, 'src/api/generated');
const docFile = join(generated, 'openapi.json');
const typesFile = join(generated, 'openapi.d.ts');
const stampFile = join(here, 'dist/web/.build-stamp');

mkdirSync(generated, { recursive: true });
execFileSync(process.execPath, [join(root, 'apps/policy-server/dist/src/main.js'), 'openapi', docFile], { stdio: 'inherit' });

function walk(dir, acc = []) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) { if (p !== generated) walk(p, acc); } else acc.push(p);
  }
  return acc;
}
const inputs = [docFile, join(here, 'index.html'), join(here, 'vite.config.mts'), join(here, 'tsconfig.app.json'), join(root, 'package-lock.json'), ...walk(join(here, 'src'))].sort();
const hash = createHash('sha256');
for (const f of inputs) hash.update(f).update(readFileSync(f));
const stamp = hash.digest('hex');
if (existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp && statSync(typesFile, { throwIfNoEntry: false })) {
  process.exit(0);
}

const openapiTS = (await import('openapi-typescript')).default;
const { astToString } = await import('openapi-typescript');
const ast = await openapiTS(new URL(`file://${docFile}`));
writeFileSync(typesFile, `// Generated from the policy server's OpenAPI document by apps/dashboard/scripts/build.mjs. Do not edit.\n${astToString(ast)}`);

execFileSync(process.execPath, [join(root, 'node_modules/typescript7/bin/tsc'), '-p', join(here, 'tsconfig.app.json')], { stdio: 'inherit' });
execFileSync(process.execPath, [join(root, 'node_modules/vite/bin/vite.js'), 'build', '--logLevel', 'warn', '--config', join(here, 'vite.config.mts')], { stdio: 'inherit', cwd: here });
writeFileSync(stampFile, stamp);

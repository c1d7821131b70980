// Lint for the whole workspace. Module boundaries are enforced by tags in each
// project.json: shared libs (libs/proto, libs/nats-auth) depend only on shared
// libs, the server never imports libs/bpf, and nothing imports from apps/.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import nx from '@nx/eslint-plugin';

const depConstraints = [
  // Axis 1: where code runs.
  { sourceTag: 'scope:shared', onlyDependOnLibsWithTags: ['scope:shared'] },
  { sourceTag: 'scope:dev', onlyDependOnLibsWithTags: ['scope:shared', 'scope:server'] },
  { sourceTag: 'scope:server', onlyDependOnLibsWithTags: ['scope:shared', 'scope:server', 'scope:dev'] },
  { sourceTag: 'scope:host', onlyDependOnLibsWithTags: ['scope:shared', 'scope:host', 'scope:dev'] },
  { sourceTag: 'scope:cli', onlyDependOnLibsWithTags: ['scope:shared', 'scope:dev'] },
  // The dashboard (browser code) imports nothing of ours; its browser tests start real servers.
  { sourceTag: 'scope:web', onlyDependOnLibsWithTags: ['scope:shared', 'scope:dev'] },
  // Axis 2: what kind of project. Nothing depends on an app.
  { sourceTag: 'type:proto', onlyDependOnLibsWithTags: [] },
  { sourceTag: 'type:migrations', onlyDependOnLibsWithTags: [] },
  { sourceTag: 'type:lib', onlyDependOnLibsWithTags: ['type:proto', 'type:lib'] },
  { sourceTag: 'type:devkit', onlyDependOnLibsWithTags: ['type:proto', 'type:migrations'] },
  { sourceTag: 'type:app', onlyDependOnLibsWithTags: ['type:proto', 'type:lib', 'type:migrations', 'type:devkit'] },
];

// Tests of a shared lib may start real servers with libs/devservices
// (scope:dev, type:devkit); the lib's own code still may not.
const testDepConstraints = depConstraints.map((c) =>
  c.sourceTag === 'scope:shared' ? { ...c, onlyDependOnLibsWithTags: [...c.onlyDependOnLibsWithTags, 'scope:dev'] }
  : c.sourceTag === 'type:lib' ? { ...c, onlyDependOnLibsWithTags: [...c.onlyDependOnLibsWithTags, 'type:devkit'] }
  : c,
);

const boundaries = (constraints) => ({ enforceBuildableLibDependency: false, allow: [], depConstraints: constraints });

export default tseslint.config(
  {
    ignores: ['**/dist/**', '**/node_modules/**', '.nx/**', '.cgfence/**', '**/*.bpf.o', 'apps/dashboard/src/api/generated/**'],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    plugins: { '@nx': nx },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@nx/enforce-module-boundaries': ['error', boundaries(depConstraints)],
    },
  },
  {
    files: ['**/*.spec.ts'],
    rules: { '@nx/enforce-module-boundaries': ['error', boundaries(testDepConstraints)] },
  },
  {
    files: ['**/*.mjs', '**/*.cjs', '**/*.js'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', URL: 'readonly' } },
  },
);

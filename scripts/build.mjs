#!/usr/bin/env node
// Builds the workspace: the eBPF C programs with clang, then every TypeScript
// project with the TypeScript 7 compiler in build mode (project references).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });

function buildBpf() {
  const src = join(root, 'libs/bpf/c');
  const out = join(root, 'libs/bpf/dist/bpf');
  if (!existsSync(src)) return;
  mkdirSync(out, { recursive: true });
  const arch = process.arch === 'arm64' ? 'arm64' : 'x86';
  for (const file of readdirSync(src).filter((f) => f.endsWith('.bpf.c'))) {
    const input = join(src, file);
    const output = join(out, file.replace(/\.c$/, '.o'));
    const headers = readdirSync(src).filter((f) => f.endsWith('.h')).map((f) => join(src, f));
    const newest = Math.max(statSync(input).mtimeMs, ...headers.map((h) => statSync(h).mtimeMs));
    if (existsSync(output) && statSync(output).mtimeMs >= newest) continue;
    run('clang', ['-O2', '-g', '-Wall', '-Werror', '-target', 'bpf', `-D__TARGET_ARCH_${arch}`,
      '-I', src, '-I', `/usr/include/${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu`,
      '-c', input, '-o', output]);
  }
}

/**
 * Native shared objects loaded through koffi (apps/<app>/native/<name>.c -> apps/<app>
 * /dist/native/<name>.so): the DNS proxy's UDP forwarding core.
 */
function buildNative() {
  const apps = join(root, 'apps');
  for (const app of readdirSync(apps)) {
    const src = join(apps, app, 'native');
    if (!existsSync(src)) continue;
    const out = join(apps, app, 'dist', 'native');
    mkdirSync(out, { recursive: true });
    for (const file of readdirSync(src).filter((f) => f.endsWith('.c'))) {
      const input = join(src, file);
      const output = join(out, file.replace(/\.c$/, '.so'));
      if (existsSync(output) && statSync(output).mtimeMs >= statSync(input).mtimeMs) continue;
      run('clang', ['-O2', '-g', '-Wall', '-Wextra', '-Werror', '-fPIC', '-shared', '-pthread', input, '-o', output]);
    }
  }
}

buildBpf();
buildNative();
run(process.execPath, [join(root, 'node_modules/typescript7/bin/tsc'), '-b', ...process.argv.slice(2)]);
// The dashboard: its API client is generated from the server just built, then
// type-checked and bundled (apps/dashboard/scripts/build.mjs; skipped when unchanged).
run(process.execPath, [join(root, 'apps/dashboard/scripts/build.mjs')]);

import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// The policy server serves dist/web at / (see apps/policy-server/src/dashboard).
export default defineConfig({
  root: import.meta.dirname,
  plugins: [react()],
  build: { outDir: 'dist/web', emptyOutDir: true },
});

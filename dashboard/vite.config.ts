/// <reference types="vitest/config" />
import { defineConfig } from 'vite';

// The app is served by the `routerly` binary under /dashboard (crates/routerly-server/src/dashboard.rs),
// which embeds dist/. `npm run dev` proxies the API to a running `routerly serve` (ROUTERLY_URL).
const target = process.env.ROUTERLY_URL ?? 'http://127.0.0.1:3000';

export default defineConfig({
  base: '/dashboard/',
  // JSX without a plugin: the transformer reads tsconfig's "jsx": "react-jsx".
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 600 },
  server: {
    proxy: { '/api': target, '/v1': target },
  },
  test: {
    environment: 'jsdom',
    include: ['src/**/*.test.{ts,tsx}'],
    setupFiles: ['src/test/setup.ts'],
  },
});

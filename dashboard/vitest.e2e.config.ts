import { defineConfig } from 'vitest/config';

// End-to-end tests: the real `routerly` binary and `routerly-mock`, driven through Debian's
// Chromium by playwright-core. One file at a time; each file starts its own service.
export default defineConfig({
  test: {
    environment: 'node',
    include: ['e2e/**/*.e2e.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    fileParallelism: false,
    sequence: { concurrent: false },
  },
});

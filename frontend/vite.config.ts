/// <reference types="vitest/config" />
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

const api = 'http://127.0.0.1:8000';

export default defineConfig({
  plugins: [react()],
  base: '/',
  server: {
    proxy: {
      '/api': { target: api, changeOrigin: true },
      '/health': { target: api, changeOrigin: true },
    },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    chunkSizeWarningLimit: 1200,
  },
  test: {
    environment: 'jsdom',
    globals: true,
    setupFiles: ['./src/test/setup.ts'],
    css: false,
    // @rjsf/mantine imports dayjs plugins without extensions: let Vite resolve them
    server: { deps: { inline: [/@rjsf\/mantine/, /@mantine\/dates/] } },
    pool: 'threads',
    maxWorkers: 2,
    testTimeout: 30_000,
  },
});

import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  target: 'node22',
  platform: 'node',
  // Sibling @keymaker packages stay external: they are dependencies, not copies.
  external: [/^@keymaker\//, /^@aws-sdk\//],
});

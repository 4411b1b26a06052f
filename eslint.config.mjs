// Lint for the whole workspace: typescript-eslint's type-checked rules on every package's sources
// and tests (formatting is prettier's job, see .prettierrc.json).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// The Node globals our plain-JS scripts use (the `globals` package is not installed, so they are listed here).
const nodeGlobals = {
  require: 'readonly',
  module: 'writable',
  exports: 'writable',
  process: 'readonly',
  console: 'readonly',
  __dirname: 'readonly',
  __filename: 'readonly',
  Buffer: 'readonly',
  setTimeout: 'readonly',
  clearTimeout: 'readonly',
  setInterval: 'readonly',
  clearInterval: 'readonly',
  URL: 'readonly',
  URLSearchParams: 'readonly',
  fetch: 'readonly',
  performance: 'readonly',
  AbortController: 'readonly',
  AbortSignal: 'readonly',
  TextEncoder: 'readonly',
  TextDecoder: 'readonly',
};

export default tseslint.config(
  {
    ignores: [
      '**/dist/**',
      '**/node_modules/**',
      '.toolchain/**',
      '.venv/**',
      '.nx/**',
      '.tmp/**',
      'bench/.work/**',
      'coverage/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    files: ['**/*.ts', '**/*.d.cts', '**/*.d.mts'],
    languageOptions: {
      parserOptions: {
        projectService: {
          // The packages' tsup.config.ts (and the types of the build scripts they import) are in no package
          // tsconfig (those hold the shipped sources and their tests); type-check them with the base compiler
          // options. tools/*.ts have tools/tsconfig.json.
          allowDefaultProject: ['packages/*/tsup.config.ts', 'packages/*/scripts/*.d.mts'],
          defaultProject: 'tsconfig.base.json',
        },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      // Our fakes, stores and ports implement Promise-returning interfaces with `async` methods that
      // need no await (an in-memory map, a canned answer); `async` keeps a throw a rejection, as in
      // the real implementations, so the rule would only push us to less faithful fakes.
      '@typescript-eslint/require-await': 'off',
      // `const { left, out, ...rest } = x` names fields only to leave them out of `rest`.
      '@typescript-eslint/no-unused-vars': ['error', { ignoreRestSiblings: true }],
    },
  },
  {
    files: ['**/*.{js,cjs,mjs}'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { globals: nodeGlobals },
    rules: {
      ...tseslint.configs.disableTypeChecked.rules,
      // CommonJS files (.cjs: jest's config and global setup, the moto and fault helpers) load modules with require().
      '@typescript-eslint/no-require-imports': 'off',
      // As for TypeScript: fields named only to leave them out of a `...rest`.
      '@typescript-eslint/no-unused-vars': ['error', { ignoreRestSiblings: true }],
    },
  },
);

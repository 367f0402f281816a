import { readFile } from 'node:fs/promises'
import { configDefaults, defineConfig } from 'vitest/config'

export default defineConfig({
  plugins: [
    {
      // Same as tsup's `loader: { '.lua': 'text' }`: a Lua file imports as its source text.
      name: 'lua-as-text',
      async load(id) {
        if (!id.endsWith('.lua')) return null
        return `export default ${JSON.stringify(await readFile(id, 'utf8'))}`
      },
    },
  ],
  test: {
    include: ['test/**/*.test.ts'],
    // The soak runs on its own (`npm run soak`, vitest.soak.config.ts): see docs/soak.md.
    exclude: [...configDefaults.exclude, 'test/soak/**'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Suites share two cores and one Redis; files run in parallel but not too many at once.
    maxWorkers: 2,
    setupFiles: ['test/setup.ts'],
  },
})

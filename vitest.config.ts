import { readFile } from 'node:fs/promises'
import { defineConfig } from 'vitest/config'

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
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Suites share two cores and one Redis; files run in parallel but not too many at once.
    maxWorkers: 2,
    setupFiles: ['test/setup.ts'],
  },
})

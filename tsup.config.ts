import { defineConfig } from 'tsup'

export default defineConfig({
  entry: {
    index: 'src/index.ts',
    testing: 'src/testing.ts',
    observability: 'src/observability/index.ts',
    cli: 'src/cli.ts',
    http: 'src/http/index.ts',
    express: 'src/http/adapters/express.ts',
    fastify: 'src/http/adapters/fastify.ts',
    node: 'src/http/adapters/node.ts',
    dashboard: 'src/dashboard/index.ts',
  },
  // The frameworks are optional peer dependencies, used for their types only.
  external: ['express', 'fastify'],
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
  // import.meta.url in the CJS build (the dashboard finds its front end beside its entry).
  shims: true,
  // Lua scripts live in files (one operation each) and are inlined as strings at build time.
  loader: { '.lua': 'text' },
})

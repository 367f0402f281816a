import { readFile } from 'node:fs/promises'
import { configDefaults, defineConfig } from 'vitest/config'

/** The suites that run a second time on a Redis Cluster (the `cluster` project). */
const CLUSTER_SUITES = [
  'test/queue/submit.test.ts',
  'test/queue/idempotency.test.ts',
  'test/queue/durable-cancel.test.ts',
  'test/queue/dedup-handoff.test.ts',
  'test/worker/execution.test.ts',
  'test/worker/leases.test.ts',
  'test/fleet/locks.test.ts',
  'test/fleet/tenant-breakers.test.ts',
]

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
    // `include` is per project below: a project's list would be added to a root one, not replace it.
    // The soak runs on its own (`npm run soak`, vitest.soak.config.ts): see docs/soak.md.
    exclude: [...configDefaults.exclude, 'test/soak/**'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Suites share two cores and one Redis; files run in parallel but not too many at once.
    maxWorkers: 2,
    setupFiles: ['test/setup.ts'],
    projects: [
      // Everything, against the shared Redis (and private servers where a suite starts its own).
      { extends: true, test: { name: 'default', include: ['test/**/*.test.ts'] } },
      // The shared queue, worker and fleet suites again on a private Redis Cluster (one for the
      // whole run, test/helpers/cluster-setup.ts): every script must keep to one slot, clients
      // must follow redirections. The broker conformance suite on a cluster and the failover
      // tests are in the default project (test/broker/redis-cluster-broker.test.ts, test/cluster/).
      {
        extends: true,
        test: {
          name: 'cluster',
          include: CLUSTER_SUITES,
          env: { TASKLOOM_TEST_REDIS: 'cluster' },
          globalSetup: ['test/helpers/cluster-setup.ts'],
        },
      },
    ],
  },
})

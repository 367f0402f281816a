/**
 * The durable soak (test/soak/), kept out of `npm test`: `npm run soak` (300 s of faults, or
 * SOAK_SECONDS) and `npm run soak:short` (75 s, one round). Same plugins and setup as the suite.
 */
import { configDefaults, defineConfig } from 'vitest/config'
import base from './vitest.config.js'

export default defineConfig({
  ...base,
  test: {
    ...base.test,
    // The suite's projects (default, cluster) are not the soak's: it is one file, on its own servers.
    projects: undefined,
    include: ['test/soak/**/*.test.ts'],
    exclude: configDefaults.exclude,
    maxWorkers: 1,
  },
})

import { describe } from 'vitest'
import { storeConformance } from './conformance/index.js'
import { pgliteHarness } from './harness.js'

describe('PostgresStore on PGlite (in memory)', () => {
  storeConformance(pgliteHarness())
})

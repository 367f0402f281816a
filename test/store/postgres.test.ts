import { describe } from 'vitest'
import { hasPostgres } from '../helpers/services.js'
import { storeConformance } from './conformance/index.js'
import { postgresHarness } from './harness.js'

describe.skipIf(!(await hasPostgres()))('PostgresStore on PostgreSQL', () => {
  storeConformance(postgresHarness())
})

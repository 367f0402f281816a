/**
 * The Store conformance suite: every Store implementation and engine runs all of it
 * (test/store/postgres.test.ts, test/store/pglite.test.ts).
 */
import { afterAll, beforeAll } from 'vitest'
import type { Harness } from '../harness.js'
import { fencesSuite } from './fences.js'
import { fleetSuite } from './fleet.js'
import { insertSuite } from './insert.js'
import { migrationsSuite } from './migrations.js'
import { readsSuite } from './reads.js'
import { schedulesSuite } from './schedules.js'
import { updatesSuite } from './updates.js'

export function storeConformance(h: Harness): void {
  beforeAll(() => h.setup())
  afterAll(() => h.teardown())
  migrationsSuite(h)
  insertSuite(h)
  updatesSuite(h)
  readsSuite(h)
  schedulesSuite(h)
  fleetSuite(h)
  fencesSuite(h)
}

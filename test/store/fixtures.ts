/** Rows and times for the store suites. Times are fixed, so no test depends on the clock. */
import type { NewTaskRow, TaskUpdate } from '../../src/store/store.js'

/** 2030-01-01T00:00:00Z: every test's "now". */
export const T0 = Date.UTC(2030, 0, 1)
export const DAY = 86_400_000

let counter = 0

/** A new task row, `queued` at T0, with a unique id. */
export function newRow(overrides: Partial<NewTaskRow> = {}): NewTaskRow {
  counter += 1
  return {
    id: `task-${counter}`,
    name: 'send-email',
    tenantId: 'acme',
    payload: JSON.stringify({ to: `user${counter}@example.com` }),
    priority: 'normal',
    runAt: T0,
    timeoutMs: 30_000,
    maxRetries: 3,
    createdAt: T0,
    idempotencyTtlMs: DAY,
    ...overrides,
  }
}

export function rows(count: number, overrides: Partial<NewTaskRow> = {}): NewTaskRow[] {
  return Array.from({ length: count }, () => newRow(overrides))
}

/** The usual life of an attempt, as the broker reports it. */
export const claimed = (id: string, attempt: number, at: number, workerId = 'w1'): TaskUpdate => ({
  id,
  status: 'processing',
  attempt,
  at,
  workerId,
})

export const completed = (id: string, attempt: number, at: number, result = '{"ok": true}'): TaskUpdate => ({
  id,
  status: 'completed',
  attempt,
  at,
  result,
})

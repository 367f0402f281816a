/** Schedules and task definitions in the store: CRUD, due reads, compare-and-set advance. */
import { describe, expect, it } from 'vitest'
import type { ScheduleRow } from '../../../src/store/store.js'
import type { Harness } from '../harness.js'

const T = Date.UTC(2030, 0, 1)

function schedule(id: string, overrides: Partial<ScheduleRow> = {}): ScheduleRow {
  return {
    id,
    tenantId: 'acme',
    taskName: 'report',
    cron: '* * * * *',
    timezone: 'UTC',
    input: '{"kind":"sales"}',
    misfire: 'run-once',
    paused: false,
    options: { priority: 'high' },
    nextRunAt: T + 60_000,
    lastRunAt: null,
    createdAt: T,
    updatedAt: T,
    ...overrides,
  }
}

export function schedulesSuite(h: Harness): void {
  describe('schedules', () => {
    it('inserts only when the id is free: a taken id answers null and changes nothing', async () => {
      const { store } = await h.open()
      try {
        const first = await store.insertSchedule(schedule('once'))
        expect(first).toMatchObject({ id: 'once', cron: schedule('once').cron })
        expect(
          await store.insertSchedule(schedule('once', { cron: '0 * * * *', updatedAt: T + 9 })),
        ).toBeNull()
        expect(await store.getSchedule('once')).toMatchObject({ cron: schedule('once').cron, updatedAt: T })
        // Concurrent inserts of one id: exactly one wins.
        const raced = await Promise.all(
          Array.from({ length: 5 }, (_, i) => store.insertSchedule(schedule('race', { updatedAt: T + i }))),
        )
        expect(raced.filter((r) => r !== null)).toHaveLength(1)
      } finally {
        await store.close()
      }
    })

    it('upserts, reads, lists by tenant, pauses and removes', async () => {
      const { store } = await h.open()
      try {
        const a = await store.upsertSchedule(schedule('a'))
        // jsonb gives back equal JSON, not the same text.
        expect({ ...a!, input: JSON.parse(a!.input) }).toEqual({ ...schedule('a'), input: { kind: 'sales' } })
        // A replacement keeps createdAt, lastRunAt and paused, takes the rest; a new expression
        // takes the row's next tick.
        const a2 = await store.upsertSchedule(
          schedule('a', { cron: '0 * * * *', createdAt: T + 5, lastRunAt: T + 7, updatedAt: T + 9 }),
        )
        expect(a2).toMatchObject({ cron: '0 * * * *', createdAt: T, lastRunAt: null, updatedAt: T + 9 })
        await store.upsertSchedule(schedule('b', { tenantId: 'beta', createdAt: T + 1 }))
        await store.upsertSchedule(schedule('c', { createdAt: T + 2 }))
        expect((await store.listSchedules()).map((s) => s.id)).toEqual(['a', 'b', 'c'])
        expect((await store.listSchedules({ tenantId: 'acme' })).map((s) => s.id)).toEqual(['a', 'c'])
        expect((await store.listSchedules({ limit: 1, offset: 1 })).map((s) => s.id)).toEqual(['b'])

        // The same expression keeps the pending tick whatever the row says.
        const a3 = await store.upsertSchedule(schedule('a', { cron: '0 * * * *', nextRunAt: T + 99 }))
        expect(a3).toMatchObject({ nextRunAt: T + 60_000 })
        // Another tenant's id: null, and nothing changes.
        expect(await store.upsertSchedule(schedule('a', { tenantId: 'other', cron: '5 * * * *' }))).toBeNull()
        expect(await store.getSchedule('a')).toMatchObject({ tenantId: 'acme', cron: '0 * * * *' })

        expect(await store.pauseSchedule('a', T + 10)).toBe(true)
        expect(await store.getSchedule('a')).toMatchObject({
          paused: true,
          nextRunAt: null,
          updatedAt: T + 10,
        })
        expect(await store.pauseSchedule('zz', T)).toBe(false)
        // An upsert of a paused schedule keeps it paused, without a tick.
        expect(await store.upsertSchedule(schedule('a', { cron: '0 * * * *' }))).toMatchObject({
          paused: true,
          nextRunAt: null,
        })
        // Resume is a compare and set on the expression the tick was computed from.
        expect(await store.resumeSchedule('a', { cron: '* * * * *', timezone: 'UTC' }, T + 5, T + 11)).toBe(
          false,
        )
        expect(await store.resumeSchedule('a', { cron: '0 * * * *', timezone: 'UTC' }, T + 5, T + 11)).toBe(
          true,
        )
        expect(await store.getSchedule('a')).toMatchObject({ paused: false, nextRunAt: T + 5 })
        // Not paused any more: a second resume does nothing.
        expect(await store.resumeSchedule('a', { cron: '0 * * * *', timezone: 'UTC' }, T + 7, T + 12)).toBe(
          false,
        )
        expect(await store.removeSchedule('a')).toBe(true)
        expect(await store.removeSchedule('a')).toBe(false)
        expect(await store.getSchedule('a')).toBeNull()
      } finally {
        await store.close()
      }
    })

    it('reads due schedules by next tick, and advances each exactly once', async () => {
      const { store } = await h.open()
      const other = await h.open({ queue: store.queue })
      try {
        await store.upsertSchedule(schedule('soon', { nextRunAt: T + 1000 }))
        await store.upsertSchedule(schedule('later', { nextRunAt: T + 5000 }))
        await store.upsertSchedule(schedule('paused', { nextRunAt: T + 500, paused: true }))
        await store.upsertSchedule(schedule('never', { nextRunAt: null }))
        expect((await store.dueSchedules(T + 5000, 10)).map((s) => s.id)).toEqual(['soon', 'later'])
        expect((await store.dueSchedules(T + 4999, 10)).map((s) => s.id)).toEqual(['soon'])
        expect((await store.dueSchedules(T + 5000, 1)).map((s) => s.id)).toEqual(['soon'])

        // Two stores (two processes) advance the same tick at once: one wins.
        const moved = await Promise.all([
          store.advanceSchedule('soon', T + 1000, T + 2000, T + 1000),
          other.store.advanceSchedule('soon', T + 1000, T + 2000, T + 1000),
        ])
        expect(moved.filter(Boolean)).toHaveLength(1)
        expect(await store.getSchedule('soon')).toMatchObject({ nextRunAt: T + 2000, lastRunAt: T + 1000 })
        // A stale tick does not move it; a paused schedule does not move.
        expect(await store.advanceSchedule('soon', T + 1000, T + 3000, null)).toBe(false)
        expect(await store.advanceSchedule('paused', T + 500, T + 600, null)).toBe(false)
        expect(await store.advanceSchedule('soon', T + 2000, null, null)).toBe(true)
        expect(await store.getSchedule('soon')).toMatchObject({ nextRunAt: null, lastRunAt: T + 1000 })
      } finally {
        await other.store.close()
        await store.close()
      }
    })

    it('records task definitions, rewriting only a changed one', async () => {
      const { store } = await h.open()
      try {
        const def = {
          name: 'send-email',
          inputSchema: { type: 'object', properties: { to: { type: 'string' } } },
          defaults: { priority: 'normal' as const, maxRetries: 3, timeoutMs: 1000 },
          version: 'v1',
          updatedAt: T,
        }
        expect(await store.putDefinition(def)).toBe(true)
        expect(await store.putDefinition({ ...def, updatedAt: T + 1 })).toBe(false)
        expect(await store.getDefinition('send-email')).toEqual(def)
        expect(await store.putDefinition({ ...def, version: 'v2', updatedAt: T + 2 })).toBe(true)
        expect(await store.getDefinition('send-email')).toMatchObject({ version: 'v2', updatedAt: T + 2 })
        await store.putDefinition({ ...def, name: 'a-task' })
        expect((await store.listDefinitions()).map((d) => d.name)).toEqual(['a-task', 'send-email'])
        expect(await store.getDefinition('nope')).toBeNull()
      } finally {
        await store.close()
      }
    })
  })
}

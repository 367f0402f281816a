import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createScheduler, defineTask, TaskloomError, tickKey } from '../../src/index.js'
import { until } from '../helpers/backends.js'
import { schedBackends, track } from './harness.js'

const report = defineTask({
  name: 'report',
  input: z.object({ kind: z.string(), days: z.number().int().min(1) }),
  defaults: { priority: 'high', maxRetries: 1 },
})

async function rejects(p: Promise<unknown>, code: string): Promise<TaskloomError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(TaskloomError)
  expect((err as TaskloomError).code).toBe(code)
  return err as TaskloomError
}

for (const b of schedBackends) {
  describe.skipIf(!b.available)(`schedules (${b.label})`, () => {
    it('upsert, get, list, pause, resume, remove', async () => {
      const q = b.queue()
      const before = Date.now()
      const s = await q.schedules.upsert({
        id: 'daily',
        cron: '0 6 * * *',
        task: report,
        input: { kind: 'sales', days: 7 },
        timezone: 'Europe/Berlin',
        misfire: 'catch-up',
        tenantId: 'acme',
      })
      expect(s).toMatchObject({
        id: 'daily',
        cron: '0 6 * * *',
        taskName: 'report',
        input: { kind: 'sales', days: 7 },
        timezone: 'Europe/Berlin',
        misfire: 'catch-up',
        paused: false,
        tenantId: 'acme',
        lastRunAt: null,
        options: { priority: 'high', maxRetries: 1, timeoutMs: 300_000 },
      })
      // 06:00 in Berlin is 04:00 or 05:00 UTC, and within a day.
      const next = s.nextRunAt!.getTime()
      expect(next).toBeGreaterThan(before)
      expect(next - before).toBeLessThanOrEqual(86_400_000)
      expect([4, 5]).toContain(s.nextRunAt!.getUTCHours())
      expect(s.nextRunAt!.getUTCMinutes()).toBe(0)

      expect(await q.schedules.get('daily')).toEqual(s)
      expect(await q.schedules.get('nope')).toBeNull()

      // Upsert again with the same cron keeps the pending tick and createdAt; a new input replaces.
      const again = await q.schedules.upsert({
        id: 'daily',
        cron: '0 6 * * *',
        task: report,
        input: { kind: 'sales', days: 30 },
        timezone: 'Europe/Berlin',
        tenantId: 'acme',
      })
      expect(again.nextRunAt).toEqual(s.nextRunAt)
      expect(again.createdAt).toEqual(s.createdAt)
      expect(again.input).toEqual({ kind: 'sales', days: 30 })
      expect(again.misfire).toBe('run-once')

      expect(await q.schedules.pause('daily')).toBe(true)
      expect(await q.schedules.get('daily')).toMatchObject({ paused: true, nextRunAt: null })
      expect(await q.schedules.resume('daily')).toBe(true)
      const resumed = await q.schedules.get('daily')
      expect(resumed?.paused).toBe(false)
      expect(resumed?.nextRunAt?.getTime()).toBeGreaterThan(before)

      expect(await q.schedules.pause('nope')).toBe(false)
      expect(await q.schedules.resume('nope')).toBe(false)
      expect(await q.schedules.remove('daily')).toBe(true)
      expect(await q.schedules.remove('daily')).toBe(false)
      expect(await q.schedules.get('daily')).toBeNull()
    })

    it('rejects bad cron expressions at once with the parser reason, and unknown time zones', async () => {
      const q = b.queue()
      const base = { id: 's1', task: report, input: { kind: 'x', days: 1 } }
      const e1 = await rejects(q.schedules.upsert({ ...base, cron: '61 * * * *' }), 'INVALID_CRON')
      expect(e1.message).toMatch(/got value 61 expected range 0-59/)
      expect(e1.issues[0]?.path).toBe('cron')
      const e2 = await rejects(q.schedules.upsert({ ...base, cron: '* * *' }), 'INVALID_CRON')
      expect(e2.message).toMatch(/expected 5 fields .* or 6 .* got 3/)
      await rejects(q.schedules.upsert({ ...base, cron: '* * * * * * *' }), 'INVALID_CRON')
      await rejects(q.schedules.upsert({ ...base, cron: 'every minute' }), 'INVALID_CRON')
      const tz = await rejects(
        q.schedules.upsert({ ...base, cron: '* * * * *', timezone: 'Mars/Olympus' }),
        'INVALID_OPTIONS',
      )
      expect(tz.issues[0]?.path).toBe('timezone')
      // Bad input is checked against the task's schema, bad fields named.
      const bad = await rejects(
        q.schedules.upsert({ ...base, cron: '* * * * *', input: { kind: 1, days: 0 } }),
        'INVALID_INPUT',
      )
      expect(bad.issues.map((i) => i.path).sort()).toEqual(['input.days', 'input.kind'])
      await rejects(
        q.schedules.upsert({ ...base, cron: '* * * * *', misfire: 'sometimes' as never }),
        'INVALID_OPTIONS',
      )
      await rejects(q.schedules.upsert({ ...base, id: 'a b', cron: '* * * * *' }), 'INVALID_OPTIONS')
      // An unregistered task name is unknown.
      await rejects(
        q.schedules.upsert({ ...base, task: 'nobody-registered-me', cron: '* * * * *' }),
        'UNKNOWN_TASK',
      )
      // Six fields (seconds first) are fine.
      const six = await q.schedules.upsert({ ...base, cron: '*/10 * * * * *' })
      expect(six.nextRunAt!.getTime() % 10_000).toBe(0)
      expect(await q.schedules.list()).toHaveLength(1)
    })

    it('lists by tenant, oldest first, with limit and offset', async () => {
      const q = b.queue()
      for (const [id, tenantId] of [
        ['a1', 'acme'],
        ['b1', 'beta'],
        ['a2', 'acme'],
        ['d1', undefined],
      ] as const) {
        await q.schedules.upsert({
          id,
          cron: '0 0 * * *',
          task: report,
          input: { kind: id, days: 1 },
          tenantId,
        })
      }
      expect((await q.schedules.list({ tenantId: 'acme' })).map((s) => s.id)).toEqual(['a1', 'a2'])
      expect((await q.schedules.list({ tenantId: 'beta' })).map((s) => s.id)).toEqual(['b1'])
      expect((await q.schedules.list({ tenantId: 'default' })).map((s) => s.id)).toEqual(['d1'])
      expect((await q.schedules.list({ tenantId: 'zeta' })).map((s) => s.id)).toEqual([])
      expect((await q.schedules.list()).map((s) => s.id)).toEqual(['a1', 'b1', 'a2', 'd1'])
      expect((await q.schedules.list({ limit: 2, offset: 1 })).map((s) => s.id)).toEqual(['b1', 'a2'])
      await rejects(q.schedules.list({ limit: 0 }), 'INVALID_OPTIONS')
    })

    it('submit with a schedule option creates a schedule that fires', async () => {
      const q = b.queue()
      const r = await q.submit(
        report,
        { kind: 'ops', days: 2 },
        { schedule: '* * * * * *', tenantId: 'acme', lockKey: 'report:acme' },
      )
      expect(r.scheduleId).toBe(r.id)
      expect(r).toMatchObject({ status: 'pending', deduplicated: false })
      const s = await q.schedules.get(r.scheduleId!)
      expect(s).toMatchObject({
        cron: '* * * * * *',
        taskName: 'report',
        tenantId: 'acme',
        input: { kind: 'ops', days: 2 },
      })
      expect(s!.options.lockKey).toBe('report:acme')
      // An idempotency key names the schedule; a repeat answers the existing one.
      const k1 = await q.submit(
        report,
        { kind: 'ops', days: 2 },
        { schedule: '0 * * * *', idempotencyKey: 'hourly-ops' },
      )
      const k2 = await q.submit(
        report,
        { kind: 'ops', days: 2 },
        { schedule: '0 * * * *', idempotencyKey: 'hourly-ops' },
      )
      expect(k1).toMatchObject({
        id: 'default:hourly-ops',
        scheduleId: 'default:hourly-ops',
        deduplicated: false,
      })
      expect(k2).toMatchObject({ id: 'default:hourly-ops', deduplicated: true })
      // Concurrent repeats (a client retrying after a timeout) make one schedule, not several.
      const raced = await Promise.all(
        Array.from({ length: 5 }, () =>
          q.submit(report, { kind: 'ops', days: 2 }, { schedule: '0 * * * *', idempotencyKey: 'raced' }),
        ),
      )
      expect(raced.filter((r) => !r.deduplicated)).toHaveLength(1)
      expect(new Set(raced.map((r) => r.id))).toEqual(new Set(['default:raced']))
      // Another tenant's key of the same text is another schedule.
      const k3 = await q.submit(
        report,
        { kind: 'ops', days: 2 },
        { schedule: '0 * * * *', idempotencyKey: 'hourly-ops', tenantId: 'beta' },
      )
      expect(k3).toMatchObject({ id: 'beta:hourly-ops', deduplicated: false })
      // An id taken by one tenant cannot be upserted by another.
      await rejects(
        q.schedules.upsert({
          id: 'beta:hourly-ops',
          cron: '* * * * *',
          task: report,
          input: { kind: 'x', days: 1 },
        }),
        'INVALID_STATE',
      )
      await rejects(q.submit(report, { kind: 'x', days: 1 }, { schedule: 'nope' }), 'INVALID_CRON')
      await rejects(
        q.submit(report, { kind: 'x', days: 1 }, { schedule: '* * * * *', delayMs: 5 }),
        'INVALID_OPTIONS',
      )
      await rejects(q.submit(report, { kind: 'x', days: 0 }, { schedule: '* * * * *' }), 'INVALID_INPUT')
      await rejects(
        q.submitMany([{ task: report, input: { kind: 'x', days: 1 }, options: { schedule: '* * * * *' } }]),
        'INVALID_OPTIONS',
      )

      const scheduler = track(createScheduler({ queue: q, misfireThresholdMs: 5000 }))
      await scheduler.start()
      const tasks = await until(
        async () => {
          const page = await q.list({ name: 'report', tenantId: 'acme' })
          return page.tasks.length >= 2 ? page.tasks : null
        },
        8000,
        'two ticks',
      )
      for (const t of tasks) {
        expect(t.idempotencyKey).toMatch(new RegExp(`^schedule:${r.scheduleId}:\\d+$`))
        expect(t.input).toEqual({ kind: 'ops', days: 2 })
        expect(t.priority).toBe('high')
        expect(t.lockKey).toBe('report:acme') // every tick's task carries the schedule's lock key
      }
      const ticks = tasks.map((t) => Number(t.idempotencyKey!.split(':').pop()))
      for (const tick of ticks) expect(tick % 1000).toBe(0)
      expect(new Set(ticks).size).toBe(ticks.length)
      expect(tasks[0]!.idempotencyKey).toBe(tickKey(r.scheduleId!, Math.max(...ticks)))
      const after = await q.schedules.get(r.scheduleId!)
      expect(after!.lastRunAt).not.toBeNull()
    })

    it('needs a store', async () => {
      const q = b.queue({ postgres: false })
      await rejects(q.schedules.list(), 'INVALID_STATE')
      await expect(createScheduler({ queue: q }).start()).rejects.toMatchObject({ code: 'INVALID_STATE' })
    })
  })
}

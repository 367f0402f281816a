/**
 * Misfire policies. A pure test of the tick plan, then a real outage: a scheduler runs, stops for
 * six seconds, and another one starts; each policy decides what the missed ticks become.
 */
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createScheduler, defineTask, type Queue } from '../../src/index.js'
import { planTicks } from '../../src/schedule/scheduler.js'
import { sleep } from '../helpers/backends.js'
import { schedBackends, track } from './harness.js'

const beat = defineTask({ name: 'beat', input: z.object({ policy: z.string() }) })
const T0 = Date.UTC(2030, 0, 1, 12, 0, 0)
const row = (misfire: 'skip' | 'run-once' | 'catch-up', cron = '* * * * * *') => ({
  cron,
  timezone: 'UTC',
  misfire,
  nextRunAt: T0,
})

describe('planTicks', () => {
  it('fires an on-time tick, and each tick within the threshold', () => {
    expect(planTicks(row('skip'), T0 + 300, 5000, 100)).toEqual({ ticks: [T0], skipped: 0, next: T0 + 1000 })
    expect(planTicks(row('skip'), T0 + 2500, 5000, 100)).toEqual({
      ticks: [T0, T0 + 1000, T0 + 2000],
      skipped: 0,
      next: T0 + 3000,
    })
  })

  it('skip runs none of the missed ticks, run-once exactly one, catch-up the latest maxCatchUp', () => {
    // The pending tick is 10.5 s old at a 2 s threshold: the schedule misfired, and every tick up
    // to now (T0..T0+10 s) was missed, the recent ones too.
    const now = T0 + 10_500
    expect(planTicks(row('skip'), now, 2000, 3)).toEqual({ ticks: [], skipped: 11, next: T0 + 11_000 })
    expect(planTicks(row('run-once'), now, 2000, 3)).toEqual({ ticks: [T0], skipped: 10, next: T0 + 11_000 })
    expect(planTicks(row('catch-up'), now, 2000, 3)).toEqual({
      ticks: [T0 + 8000, T0 + 9000, T0 + 10_000],
      skipped: 8,
      next: T0 + 11_000,
    })
    expect(planTicks(row('catch-up'), now, 2000, 100).ticks).toHaveLength(11)
  })

  it('a per-second schedule after a 75 s outage at the default 60 s threshold (issue 16 item 9)', () => {
    const now = T0 + 75_000
    expect(planTicks(row('skip'), now, 60_000, 100)).toEqual({ ticks: [], skipped: 76, next: T0 + 76_000 })
    expect(planTicks(row('run-once'), now, 60_000, 100)).toEqual({
      ticks: [T0],
      skipped: 75,
      next: T0 + 76_000,
    })
    const caught = planTicks(row('catch-up'), now, 60_000, 10)
    expect(caught.ticks).toEqual(Array.from({ length: 10 }, (_, i) => T0 + 66_000 + i * 1000))
    expect(caught.skipped).toBe(66)
  })

  it('a daily schedule down for three days', () => {
    const daily = { ...row('catch-up', '0 12 * * *') }
    const now = T0 + 3 * 86_400_000 + 60_000
    // The pending tick is three days old: a misfire, and today's tick is one of the missed ones.
    expect(planTicks(daily, now, 60_000, 10)).toEqual({
      ticks: [T0, T0 + 86_400_000, T0 + 2 * 86_400_000, T0 + 3 * 86_400_000],
      skipped: 0,
      next: T0 + 4 * 86_400_000,
    })
    expect(planTicks(daily, now, 60_000, 2).ticks).toEqual([T0 + 2 * 86_400_000, T0 + 3 * 86_400_000])
    expect(planTicks({ ...daily, misfire: 'run-once' }, now, 60_000, 10).ticks).toEqual([T0])
    expect(planTicks({ ...daily, misfire: 'skip' }, now, 60_000, 10)).toEqual({
      ticks: [],
      skipped: 4,
      next: T0 + 4 * 86_400_000,
    })
    // Caught up in time (the pending tick is today's, a minute late): it fires.
    expect(
      planTicks({ ...daily, misfire: 'skip', nextRunAt: T0 + 3 * 86_400_000 }, now, 60_000, 10).ticks,
    ).toEqual([T0 + 3 * 86_400_000])
  })
})

async function ticksOf(queue: Queue, id: string): Promise<{ tick: number; createdAt: number }[]> {
  const page = await queue.list({ name: 'beat', limit: 1000 })
  return page.tasks
    .filter((t) => t.idempotencyKey?.startsWith(`schedule:${id}:`))
    .map((t) => ({ tick: Number(t.idempotencyKey!.split(':').pop()), createdAt: t.createdAt.getTime() }))
    .sort((a, b) => a.tick - b.tick)
}

for (const b of schedBackends) {
  describe.skipIf(!b.available)(`misfire after a scheduler outage (${b.label})`, () => {
    it('skip, run-once and catch-up', { timeout: 60_000 }, async () => {
      const queue = b.queue()
      for (const policy of ['skip', 'run-once', 'catch-up'] as const) {
        await queue.schedules.upsert({
          id: policy,
          cron: '* * * * * *',
          task: beat,
          input: { policy },
          misfire: policy,
        })
      }
      const threshold = 1500
      const first = track(createScheduler({ queue, misfireThresholdMs: threshold, pollMs: 50 }))
      await first.start()
      await sleep(2500)
      await first.close()
      const closedAt = Date.now()
      await sleep(6000)
      const resumedAt = Date.now()
      const second = track(createScheduler({ queue, misfireThresholdMs: threshold, pollMs: 50 }))
      await second.start()
      await sleep(3000)
      await second.close()
      const stoppedAt = Date.now()

      for (const policy of ['skip', 'run-once', 'catch-up'] as const) {
        const ticks = await ticksOf(queue, policy)
        const before = ticks.filter((t) => t.createdAt <= closedAt)
        expect(before.length, `${policy}: ticks fired before the outage`).toBeGreaterThanOrEqual(2)
        const lastBefore = before[before.length - 1]!.tick
        // Every tick due while no scheduler ran was missed, the ones just before the restart too.
        const missed = ticks.filter((t) => t.tick > lastBefore && t.tick <= resumedAt)
        const missedCount = (Math.floor(resumedAt / 1000) * 1000 - lastBefore) / 1000
        expect(missedCount, 'the outage missed several ticks').toBeGreaterThanOrEqual(5)
        if (policy === 'skip') expect(missed).toEqual([])
        if (policy === 'run-once') expect(missed.map((t) => t.tick)).toEqual([lastBefore + 1000])
        if (policy === 'catch-up') {
          expect(missed.map((t) => t.tick)).toEqual(
            Array.from({ length: missedCount }, (_, i) => lastBefore + 1000 * (i + 1)),
          )
        }
        // After the restart every tick fires again, once.
        const after = ticks.filter((t) => t.tick >= resumedAt + 1000 && t.tick <= stoppedAt - 1500)
        const expected: number[] = []
        for (let t = Math.ceil((resumedAt + 1000) / 1000) * 1000; t <= stoppedAt - 1500; t += 1000)
          expected.push(t)
        expect(
          after.map((t) => t.tick),
          `${policy}: ticks after the restart`,
        ).toEqual(expected)
        expect(new Set(ticks.map((t) => t.tick)).size).toBe(ticks.length)
      }
    })
  })
}

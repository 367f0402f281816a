/**
 * `ctx.schedule` (issue 16 item 10): a handler learns which schedule and tick started its task, and
 * `queue.get` shows the same; other tasks have none, and a submit cannot claim to be a tick.
 */
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createScheduler, defineTask, type TaskContext, TaskloomError } from '../../src/index.js'
import { scheduleOfKey, tickKey } from '../../src/schedule/tick-key.js'
import { trackWorker, until } from '../helpers/backends.js'
import { schedBackends, track } from './harness.js'

const beat = defineTask({ name: 'beat', input: z.object({ n: z.number() }) })

describe('tick keys', () => {
  it('name the schedule and tick, whatever the schedule id holds', () => {
    expect(scheduleOfKey(tickKey('a:b:c', 1_700_000_000_000))).toEqual({
      id: 'a:b:c',
      scheduledAt: new Date(1_700_000_000_000),
    })
    expect(scheduleOfKey('order-42')).toBeUndefined()
    expect(scheduleOfKey(undefined)).toBeUndefined()
    expect(scheduleOfKey('schedule:x:soon')).toBeUndefined()
    expect(scheduleOfKey('schedule::5')).toBeUndefined()
  })
})

for (const b of schedBackends) {
  describe.skipIf(!b.available)(`ctx.schedule (${b.label})`, () => {
    it('tells a handler the schedule and tick that started it', async () => {
      const queue = b.queue()
      const seen: { n: number; schedule: TaskContext['schedule'] }[] = []
      const worker = trackWorker({ queue, concurrency: 4 }).handle(beat, (input, ctx) => {
        seen.push({ n: input.n, schedule: ctx.schedule })
      })
      await worker.start()
      await queue.schedules.upsert({ id: 'every-second', cron: '* * * * * *', task: beat, input: { n: 1 } })
      const scheduler = track(createScheduler({ queue, pollMs: 50 }))
      await scheduler.start()
      const plain = await queue.submit(beat, { n: 0 })
      await until(
        () => seen.some((s) => s.n === 1) && seen.some((s) => s.n === 0),
        10_000,
        'both tasks to run',
      )
      await scheduler.close()
      await worker.close()

      expect(seen.find((s) => s.n === 0)!.schedule).toBeUndefined()
      const fired = seen.find((s) => s.n === 1)!.schedule!
      expect(fired.id).toBe('every-second')
      expect(fired.scheduledAt.getTime() % 1000).toBe(0) // a per-second tick
      expect(Math.abs(fired.scheduledAt.getTime() - Date.now())).toBeLessThan(60_000)
      const page = await queue.list({ name: 'beat', limit: 100 })
      const task = page.tasks.find(
        (t) => t.idempotencyKey === tickKey('every-second', fired.scheduledAt.getTime()),
      )!
      expect((await queue.get(task.id))?.schedule).toEqual(fired)
      expect((await queue.get(plain.id))?.schedule).toBeUndefined()

      const spoof = await queue
        .submit(beat, { n: 2 }, { idempotencyKey: 'schedule:every-second:0' })
        .catch((e) => e)
      expect(spoof).toBeInstanceOf(TaskloomError)
      expect((spoof as TaskloomError).code).toBe('INVALID_OPTIONS')
    })
  })
}

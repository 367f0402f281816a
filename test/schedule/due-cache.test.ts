/**
 * The due cache: the scheduler reads fire times from the Redis sorted set, refilled from the store
 * once per refill interval, never per tick; a refill covers at least the next minute and repairs a
 * cache that lost its entries.
 */
import { Redis } from 'ioredis'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { z } from 'zod'
import { queueKeys } from '../../src/broker/redis/keys.js'
import { createScheduler, defineTask } from '../../src/index.js'
import { internals } from '../../src/queue/internal.js'
import { sleep, until } from '../helpers/backends.js'
import { REDIS_URL } from '../helpers/services.js'
import { schedBackends, track } from './harness.js'

const durable = schedBackends.find((b) => b.label === 'durable')!
const tick = defineTask({ name: 'tick', input: z.object({}) })

describe.skipIf(!durable.available)('due cache in Redis', () => {
  const redis = new Redis(REDIS_URL)
  afterAll(async () => {
    await redis.quit()
  })

  it('is refilled from the store once per interval, covers the next minute, and fires from Redis', async () => {
    const queue = durable.queue()
    const keys = queueKeys(queue.name)
    await queue.schedules.upsert({ id: 'every-second', cron: '* * * * * *', task: tick, input: {} })
    await queue.schedules.upsert({ id: 'half-minute', cron: '*/30 * * * * *', task: tick, input: {} })
    await queue.schedules.upsert({ id: 'yearly', cron: '0 0 1 1 *', task: tick, input: {} })
    expect(await redis.zcard(keys.scheduleDue)).toBe(3) // upserts write through

    // Redis lost the cache (say it restarted): the first refill rebuilds it from the store.
    await redis.del(keys.scheduleDue, keys.scheduleHorizon, keys.scheduleRefill)
    const store = await queue[internals].scheduling.store()
    const due = vi.spyOn(store, 'dueSchedules')
    const scheduler = track(createScheduler({ queue, refillMs: 30_000 }))
    const started = Date.now()
    await scheduler.start()
    await until(async () => (await redis.zcard(keys.scheduleDue)) === 2, 5000, 'the refill')
    const horizon = Number(await redis.get(keys.scheduleHorizon))
    expect(horizon - started).toBeGreaterThanOrEqual(60_000)
    expect(await redis.zscore(keys.scheduleDue, 'yearly')).toBeNull() // not due within the lookahead

    await sleep(3500)
    await until(async () => (await queue.list({ name: 'tick' })).tasks.length >= 3, 10_000, 'three ticks')
    // Three seconds of per-second ticks, one refill: the table was read once, not per tick.
    expect(due).toHaveBeenCalledTimes(1)
    // A firing scheduler takes the entry out and puts the next tick back once the task is stored:
    // read it when it is back (a loaded machine can catch it in between).
    const next = Number(
      await until(() => redis.zscore(keys.scheduleDue, 'every-second'), 5000, 'the next tick'),
    )
    expect(next).toBeGreaterThan(Date.now() - 3000)
    expect(next % 1000).toBe(0)

    // Pause and remove take the entry out of the cache at once.
    await queue.schedules.pause('every-second')
    expect(await redis.zscore(keys.scheduleDue, 'every-second')).toBeNull()
    await queue.schedules.remove('half-minute')
    expect(await redis.zscore(keys.scheduleDue, 'half-minute')).toBeNull()
  })

  it('a stale entry is corrected from the store, not fired', async () => {
    const queue = durable.queue()
    const keys = queueKeys(queue.name)
    const s = await queue.schedules.upsert({ id: 'minutely', cron: '0 * * * * *', task: tick, input: {} })
    // A wrong fire time (in the past) in the cache: the store says the next tick is later.
    await redis.zadd(keys.scheduleDue, Date.now() - 5000, 'minutely')
    const scheduler = track(createScheduler({ queue }))
    await scheduler.start()
    await until(
      async () => Number(await redis.zscore(keys.scheduleDue, 'minutely')) === s.nextRunAt!.getTime(),
      5000,
      'the entry to be corrected',
    )
    expect((await queue.list({ name: 'tick' })).tasks).toEqual([])
  })
})

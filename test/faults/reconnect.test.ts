import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createQueue, defineTask, type Queue } from '../../src/index.js'
import { silent, trackWorker, until } from '../helpers/backends.js'
import { type PrivateRedis, startPrivateRedis } from '../helpers/private-redis.js'
import { hasRedis } from '../helpers/services.js'

const job = defineTask({ name: 'job', input: z.object({ n: z.number() }) })
const canRun = await hasRedis() // redis-server is installed where the shared Redis runs

describe.skipIf(!canRun)('Redis connections dropped while workers run', () => {
  let redis: PrivateRedis
  let admin: Redis
  let queue: Queue
  beforeAll(async () => {
    redis = await startPrivateRedis()
    admin = new Redis(redis.url)
    queue = createQueue({ name: 'reconnect', redis: redis.url, logger: silent })
  })
  afterAll(async () => {
    await queue.close()
    await admin.quit()
    await redis.stop()
  })

  it('resumes without a restart after CLIENT KILL', async () => {
    const done = new Set<number>()
    // A claim whose reply is lost with its connection is recovered by lease expiry: keep it short.
    const worker = trackWorker({ queue, concurrency: 20, pollIntervalMs: 200, leaseMs: 1000 }).handle(
      job,
      async ({ n }) => {
        await new Promise((r) => setTimeout(r, 2))
        done.add(n)
      },
    )
    await worker.start()
    const total = 600
    const producer = (async () => {
      for (let n = 0; n < total; n++) {
        await queue.submit(job, { n })
        if (n % 50 === 0) await new Promise((r) => setTimeout(r, 20))
      }
    })()
    for (let round = 0; round < 3; round++) {
      await until(() => done.size > (round + 1) * 100, 20_000, `progress before kill ${round + 1}`)
      // Every client but this admin connection: the producer's, the worker's and its blocking one.
      const killed = await admin.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes')
      expect(killed).toBeGreaterThanOrEqual(2)
    }
    await producer
    await until(() => done.size === total, 30_000, 'every task to complete after the reconnects')
    await until(async () => {
      const c = await queue.counts()
      return c.processing === 0 && c.ready.normal === 0
    }, 30_000)
    await worker.close()
    expect(done.size).toBe(total)
  }, 90_000)
})

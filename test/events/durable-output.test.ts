/**
 * Durable mode keeps task output (issue 17): progress and log lines reach PostgreSQL through the
 * change feed and are still shown after the queue's (private) Redis restarts empty.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createWorker, defineTask } from '../../src/index.js'
import { durableQueue } from '../fixtures/durable-common.js'
import { until } from '../helpers/backends.js'
import { type PrivateRedis, startPrivateRedis } from '../helpers/private-redis.js'
import { canRunPrivateServers } from '../helpers/private-servers.js'
import { DATABASE_URL, uniqueName } from '../helpers/services.js'

const canRun = await canRunPrivateServers()
const job = defineTask({ name: 'job', input: z.object({ n: z.number() }) })

describe.skipIf(!canRun)('task output in durable mode, across a Redis that restarts empty', () => {
  let redis: PrivateRedis
  beforeAll(async () => {
    redis = await startPrivateRedis()
  }, 60_000)
  afterAll(async () => {
    await redis?.stop()
  })

  it('shows progress and log lines from PostgreSQL once Redis lost them', async () => {
    const queue = durableQueue(uniqueName('durable-output'), redis.url, DATABASE_URL, {
      postgresSchema: 'taskloom_test',
    })
    const worker = createWorker({ queue, pollIntervalMs: 50 })
    worker.handle(job, async ({ n }, ctx) => {
      for (let i = 1; i <= n; i++) void ctx.log(`step ${i} of ${n}`)
      await ctx.progress({ done: n, of: n })
      return n
    })
    try {
      await worker.start()
      const { id } = await queue.submit(job, { n: 3 })
      const done = await queue.waitFor(id, { timeoutMs: 20_000 })
      expect(done.progress).toEqual({ done: 3, of: 3 })
      await until(async () => (await queue.logs(id)).total === 3)

      await redis.restartEmpty()
      await queue.ready()
      const after = await until(
        async () => queue.get(id).catch(() => null),
        20_000,
        'the task after the restart',
      )
      expect(after.status).toBe('completed')
      expect(after.progress).toEqual({ done: 3, of: 3 })
      const logs = await queue.logs(id)
      expect(logs.lines.map((l) => l.line)).toEqual(['step 1 of 3', 'step 2 of 3', 'step 3 of 3'])

      // A task run after the restart logs on top, ordered by its attempt's (higher) token.
      const next = await queue.submit(job, { n: 1 })
      await queue.waitFor(next.id, { timeoutMs: 20_000 })
      expect((await queue.logs(next.id)).lines.map((l) => l.line)).toEqual(['step 1 of 1'])
    } finally {
      await worker.close({ graceMs: 0 })
      await queue.close()
    }
  }, 90_000)
})

/**
 * A pause must not silently lift: in durable mode it is recorded in PostgreSQL, and when Redis
 * restarts empty the re-base puts it back before claims are served again, so a paused task name
 * and group stay paused while the rest of the queue runs. The flow config comes back too (the
 * broker writes it again on reconnect).
 */
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createWorker, defineTask } from '../../src/index.js'
import { waitForTask } from '../../src/testing.js'
import { durableQueue, sleep } from '../fixtures/durable-common.js'
import { startPrivateRedis } from '../helpers/private-redis.js'
import { canRunPrivateServers } from '../helpers/private-servers.js'
import { DATABASE_URL, dropSchema, uniqueName } from '../helpers/services.js'

const canRun = await canRunPrivateServers()
const job = defineTask({ name: 'job', input: z.object({ n: z.number() }) })
const other = defineTask({ name: 'other', input: z.object({ n: z.number() }) })

describe.skipIf(!canRun)('flow pauses when Redis restarts empty (durable)', () => {
  it('keeps a paused task name and group paused, and the rest runs', async () => {
    const redis = await startPrivateRedis()
    const schema = uniqueName('flow_pause').replaceAll('-', '_')
    const queue = durableQueue(uniqueName('flow-pause'), redis.url, DATABASE_URL, {
      postgresSchema: schema,
      fairness: 'tenant',
    })
    const ran: string[] = []
    const worker = createWorker({ queue, concurrency: 2, pollIntervalMs: 50 })
    worker.handle(job, (_input, ctx) => ran.push(`job:${ctx.tenantId}`))
    worker.handle(other, (_input, ctx) => ran.push(`other:${ctx.tenantId}`))
    try {
      await queue.ready()
      await queue.pause({ task: 'job' })
      await queue.pause({ group: 'acme' })
      const paused = await queue.submit(job, { n: 1 }, { tenantId: 'beta' })
      const acme = await queue.submit(other, { n: 2 }, { tenantId: 'acme' })
      await redis.restartEmpty()
      await worker.start()
      // Submitted after the loss: runs once the re-base is done.
      const free = await queue.submit(other, { n: 3 }, { tenantId: 'beta' })
      expect((await waitForTask(queue, free.id, { timeoutMs: 20_000 })).status).toBe('completed')
      await sleep(500)
      expect(ran).toEqual(['other:beta'])
      const flow = (await queue.counts({ flow: true })).flow!
      expect(flow.paused).toEqual({ queue: false, tasks: ['job'], groups: ['acme'] })
      expect(flow.lanes).toBe(true)
      await queue.resume({ task: 'job' })
      await queue.resume({ group: 'acme' })
      expect((await waitForTask(queue, paused.id, { timeoutMs: 10_000 })).status).toBe('completed')
      expect((await waitForTask(queue, acme.id, { timeoutMs: 10_000 })).status).toBe('completed')
    } finally {
      await worker.close({ graceMs: 0 })
      await queue.close()
      await redis.stop()
      await dropSchema(schema)
    }
  }, 60_000)
})

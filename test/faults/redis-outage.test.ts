/**
 * Redis stopped while an API, a producer and a worker run (issue 16 item 5): library calls and API
 * requests fail within the configured bound with the retryable BROKER_UNAVAILABLE (503 with
 * Retry-After over HTTP), the outage is logged once and the recovery once, the worker neither spins
 * nor dies and resumes by itself, and a call that gave up is never run afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { type Api, createApi } from '../../src/http/index.js'
import { createQueue, createScheduler, defineTask, type Queue, TaskloomError } from '../../src/index.js'
import type { Logger } from '../../src/logger.js'
import { internals } from '../../src/queue/internal.js'
import { waitForTask } from '../../src/testing.js'
import { trackWorker, until } from '../helpers/backends.js'
import { type PrivateRedis, startPrivateRedis } from '../helpers/private-redis.js'
import { DATABASE_URL, dropSchema, hasPostgres, hasRedis, uniqueName } from '../helpers/services.js'

const job = defineTask({ name: 'job', input: z.object({ n: z.number() }) })
const canRun = (await hasRedis()) && (await hasPostgres())
const TIMEOUT_MS = 1000

interface Line {
  level: string
  msg: string
  fields: Record<string, unknown>
}

function capture(): { lines: Line[]; logger: Logger } {
  const lines: Line[] = []
  const at =
    (level: string) =>
    (fields: object, msg = '') =>
      lines.push({ level, msg, fields: fields as Record<string, unknown> })
  return { lines, logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') } }
}

async function failure(work: Promise<unknown>): Promise<{ err: unknown; ms: number }> {
  const began = Date.now()
  try {
    await work
  } catch (err) {
    return { err, ms: Date.now() - began }
  }
  throw new Error('expected the call to fail')
}

describe.skipIf(!canRun)('Redis frozen (connections open, no answers)', () => {
  it('bounds calls the same way, and serves again once it thaws', { timeout: 30_000 }, async () => {
    const redis = await startPrivateRedis()
    const { lines, logger } = capture()
    const queue = createQueue({
      name: uniqueName('frozen'),
      redis: redis.url,
      brokerTimeoutMs: TIMEOUT_MS,
      logger,
    })
    try {
      await queue.submit(job, { n: 1 })
      redis.pause()
      try {
        const submit = await failure(queue.submit(job, { n: 2 }))
        expect((submit.err as TaskloomError).code).toBe('BROKER_UNAVAILABLE')
        expect(submit.ms).toBeLessThan(TIMEOUT_MS + 2000)
        const counts = await failure(queue.counts())
        expect((counts.err as TaskloomError).code).toBe('BROKER_UNAVAILABLE')
      } finally {
        redis.resume()
      }
      await queue.submit(job, { n: 3 })
      expect((await queue.counts()).ready.normal).toBeGreaterThanOrEqual(2)
      expect(lines.filter((l) => l.level === 'error')).toEqual([])
    } finally {
      await queue.close()
      await redis.stop()
    }
  })
})

describe.skipIf(!canRun)('Redis down under a scheduler (durable queue)', () => {
  it('logs the failed rounds once and their end once, and fires again', { timeout: 60_000 }, async () => {
    const redis = await startPrivateRedis()
    const { lines, logger } = capture()
    const queue = createQueue({
      name: uniqueName('sched-outage'),
      redis: redis.url,
      postgres: DATABASE_URL,
      postgresSchema: 'taskloom_outage_test',
      migrate: true,
      brokerTimeoutMs: 300,
      logger,
    })
    const scheduler = createScheduler({ queue, pollMs: 50, logger })
    try {
      await queue.schedules.upsert({ id: 'tick', cron: '* * * * * *', task: job, input: { n: 0 } })
      await scheduler.start()
      await redis.down()
      await new Promise((r) => setTimeout(r, 3000))
      await redis.up()
      await until(
        () => lines.some((l) => l.msg === 'scheduler rounds succeed again'),
        15_000,
        'the scheduler to recover',
      )
      // One warning for the whole run of failed rounds; the rounds after it at debug only.
      const failed = lines.filter((l) => l.msg.startsWith('scheduler round failed'))
      expect(failed.filter((l) => l.level !== 'debug').map((l) => l.level)).toEqual(['warn'])
      expect(failed[0]!.level).toBe('warn')
      expect(lines.filter((l) => l.msg === 'scheduler rounds succeed again').map((l) => l.level)).toEqual([
        'info',
      ])
      const before = (await queue.list({ name: 'job', limit: 1000 })).tasks.length
      await until(
        async () => (await queue.list({ name: 'job', limit: 1000 })).tasks.length > before,
        10_000,
        'a tick after the outage',
      )
    } finally {
      await scheduler.close()
      await queue.close()
      await redis.stop()
    }
  })
})

describe.skipIf(!canRun)('Redis down (Redis-only queue, API, worker)', () => {
  let redis: PrivateRedis
  let queue: Queue
  const { lines, logger } = capture()
  beforeAll(async () => {
    redis = await startPrivateRedis()
    queue = createQueue({ name: uniqueName('outage'), redis: redis.url, brokerTimeoutMs: TIMEOUT_MS, logger })
  })
  afterAll(async () => {
    await queue.close()
    await redis.stop()
  })

  it('fails fast with BROKER_UNAVAILABLE, logs once, and recovers by itself', {
    timeout: 60_000,
  }, async () => {
    const ran: number[] = []
    const worker = trackWorker({
      queue,
      concurrency: 4,
      pollIntervalMs: 200,
      heartbeatMs: 200,
      logger,
    }).handle(job, ({ n }) => void ran.push(n))
    await worker.start()
    const schema = uniqueName('outage').replaceAll('-', '_')
    const api = createApi({
      queue,
      tasks: [job],
      logger,
      postgres: DATABASE_URL,
      postgresSchema: schema,
      migrate: true,
    })
    const { key } = await (await api.keys()).create({
      tenantId: 'default',
      scopes: ['task:create', 'task:read'],
    })
    try {
      await outage(api)
    } finally {
      await worker.close()
      await api.close()
      await dropSchema(schema)
    }
    async function outage(api: Api): Promise<void> {
      const before = await queue.submit(job, { n: 1 })
      await waitForTask(queue, before.id)

      await redis.down()
      // Library calls: a submit and a read each give up after the bound, typed and retryable.
      const submit = await failure(queue.submit(job, { n: -1 }))
      expect(submit.err).toBeInstanceOf(TaskloomError)
      expect((submit.err as TaskloomError).code).toBe('BROKER_UNAVAILABLE')
      expect((submit.err as TaskloomError).retryable).toBe(true)
      expect(submit.ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 50)
      expect(submit.ms).toBeLessThan(TIMEOUT_MS + 2000)
      // A plain write on the queue's connection, queued for the reconnect: it gives up, and must
      // never be sent once Redis is back (ioredis replays its offline queue on reconnect).
      const redisOfQueue = queue[internals].redis!
      const stale = await failure(redisOfQueue.set(`${queue.name}:stale`, 'written after it failed'))
      expect((stale.err as TaskloomError).code).toBe('BROKER_UNAVAILABLE')
      const read = await failure(queue.get(before.id))
      expect((read.err as TaskloomError).code).toBe('BROKER_UNAVAILABLE')
      expect(read.ms).toBeLessThan(TIMEOUT_MS + 2000)
      // Over HTTP: 503 with Retry-After, for a write and a read, however many requests come.
      const headers = { 'x-api-key': key, 'content-type': 'application/json' }
      const body = new TextEncoder().encode(JSON.stringify({ name: 'job', payload: { n: -2 } }))
      const posts = await Promise.all(
        Array.from({ length: 5 }, () => api.handle({ method: 'POST', url: '/tasks', headers, body })),
      )
      for (const res of posts) {
        expect(res.status).toBe(503)
        expect(res.headers['retry-after']).toMatch(/^\d+$/)
        expect(JSON.parse(res.body)).toMatchObject({ code: 'UNAVAILABLE', status: 503 })
      }
      const got = await api.handle({ method: 'GET', url: `/tasks/${before.id}`, headers })
      expect(got.status).toBe(503)
      // Let the worker try to claim and beat through a few bounds: it must not die or spin (each
      // claim waits out the bound, so a few attempts, not thousands).
      let claims = 0
      const off = worker.on('worker:error', (e) => {
        if (e.stage === 'claim') claims += 1
      })
      await new Promise((r) => setTimeout(r, 3 * TIMEOUT_MS))
      off()
      expect(worker.isRunning).toBe(true)
      expect(claims).toBeGreaterThanOrEqual(1)
      expect(claims).toBeLessThanOrEqual(6)

      await redis.up()
      await until(async () => (await queue.counts().catch(() => null)) !== null, 10_000, 'Redis to answer')
      const after = await queue.submit(job, { n: 2 })
      expect((await waitForTask(queue, after.id, { timeoutMs: 20_000 })).status).toBe('completed')
      // Nothing that gave up during the outage ran afterwards (ioredis would replay its offline queue).
      await new Promise((r) => setTimeout(r, 500))
      expect(ran.filter((n) => n < 0)).toEqual([])
      expect(await redisOfQueue.get(`${queue.name}:stale`)).toBeNull()
      expect(await queue.counts()).toMatchObject({ ready: { normal: 0 }, delayed: 0 })

      const lost = lines.filter((l) => l.msg.startsWith('Redis connection lost'))
      const restored = lines.filter((l) => l.msg === 'Redis connection restored')
      expect(lost.map((l) => l.level)).toEqual(['warn'])
      expect(restored.map((l) => l.level)).toEqual(['info'])
      expect(restored[0]!.fields.down_ms).toBeGreaterThan(3 * TIMEOUT_MS)
      // Neither the requests nor the worker's claims and beats logged the outage again.
      expect(lines.filter((l) => l.level === 'warn' || l.level === 'error').map((l) => l.msg)).toEqual([
        lost[0]!.msg,
      ])
    }
  })
})

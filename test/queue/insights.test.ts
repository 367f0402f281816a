/**
 * The queue summaries the dashboard reads (src/queue/insights.ts) and the list options it added,
 * on a durable queue: counts per status per tenant, finished tasks per minute, dead letters grouped
 * by error, a task by idempotency key, creation-time bounds and a capped count on `queue.list`, a
 * schedule triggered now; and a Redis-only queue answering null where it keeps no record.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import {
  createQueue,
  createWorker,
  deadLetterGroups,
  deadLetterIds,
  defineTask,
  findByIdempotencyKey,
  NonRetryableError,
  type Queue,
  queueActivity,
  queueMode,
  queueSnapshot,
  queueStatusCounts,
  triggerSchedule,
  type Worker,
} from '../../src/index.js'
import { waitForTask } from '../../src/testing.js'
import { silent } from '../helpers/backends.js'
import {
  DATABASE_URL,
  dropSchema,
  hasPostgres,
  hasRedis,
  REDIS_URL,
  uniqueName,
} from '../helpers/services.js'

const ready = (await hasRedis()) && (await hasPostgres())
const job = defineTask({
  name: 'job',
  input: z.object({ fail: z.string().optional() }),
  defaults: { maxRetries: 0 },
})

describe.skipIf(!ready)('queue insights', () => {
  let queue: Queue
  let worker: Worker
  const schema = uniqueName('ins').replaceAll('-', '_')
  let started = 0

  beforeAll(async () => {
    queue = createQueue({
      name: uniqueName('ins'),
      redis: REDIS_URL,
      postgres: DATABASE_URL,
      postgresSchema: schema,
      migrate: true,
      logger: silent,
    })
    worker = createWorker({ queue, logger: silent, breakers: false })
    worker.handle(job, (input) => {
      if (input.fail) throw new NonRetryableError(input.fail)
      return 'ok'
    })
    await worker.start()
    started = Date.now()
    const ids: string[] = []
    for (const [tenantId, fail, key] of [
      ['a', undefined, 'k1'],
      ['a', undefined, undefined],
      ['a', 'disk full', undefined],
      ['a', 'disk full', undefined],
      ['a', 'timeout', undefined],
      ['b', undefined, 'k1'],
      ['b', 'disk full', undefined],
    ] as const) {
      const r = await queue.submit(job, fail ? { fail } : {}, {
        tenantId,
        ...(key ? { idempotencyKey: key } : {}),
      })
      ids.push(r.id)
    }
    await queue.submit(job, {}, { tenantId: 'a', delayMs: 3_600_000 })
    for (const id of ids) await waitForTask(queue, id)
  })
  afterAll(async () => {
    await worker?.close()
    await queue?.close()
    await dropSchema(schema)
  })

  it('counts tasks per status for a tenant, and summarises the whole queue from the broker', async () => {
    const a = await queueStatusCounts(queue, { tenantId: 'a' })
    expect(Object.fromEntries(a!.map((c) => [c.status, c.count]))).toEqual({
      pending: 1,
      queued: 0,
      processing: 0,
      completed: 2,
      failed: 3,
      cancelled: 0,
    })
    const tenant = await queueSnapshot(queue, { tenantId: 'b' })
    expect(tenant).toMatchObject({ mode: 'durable', history: true, ready: null, dead: 1, delayed: 0 })
    const all = await queueSnapshot(queue)
    expect(all).toMatchObject({ dead: 4, delayed: 1, readyTotal: 0, oldestReadyAt: null, workersAlive: 1 })
    expect(queueMode(queue)).toBe('durable')
  })

  it('counts finished tasks per minute over the window, empty minutes included', async () => {
    const buckets = await queueActivity(queue, { windowMs: 600_000, bucketMs: 60_000 })
    expect(buckets).toHaveLength(10)
    expect(buckets!.reduce((n, b) => n + b.completed, 0)).toBe(3)
    expect(buckets!.reduce((n, b) => n + b.failed, 0)).toBe(4)
    const forB = await queueActivity(queue, { tenantId: 'b', windowMs: 600_000 })
    expect(forB!.reduce((n, b) => n + b.completed + b.failed, 0)).toBe(2)
  })

  it('groups dead letters by task and error, and lists a group', async () => {
    const groups = await deadLetterGroups(queue)
    expect(groups!.map((g) => [g.errorMessage, g.count])).toEqual([
      ['disk full', 3],
      ['timeout', 1],
    ])
    expect((await deadLetterGroups(queue, { tenantId: 'b' }))!.map((g) => g.count)).toEqual([1])
    const ids = await deadLetterIds(queue, { tenantId: 'a', name: 'job', errorMessage: 'disk full' })
    expect(ids).toHaveLength(2)
  })

  it("finds a task by idempotency key, within a tenant's keys when given one", async () => {
    const b = await findByIdempotencyKey(queue, 'k1', 'b')
    expect(b?.tenantId).toBe('b')
    expect(await findByIdempotencyKey(queue, 'nope', 'a')).toBeNull()
  })

  it('bounds a list by creation time and caps its count', async () => {
    const none = await queue.list({ createdTo: started - 60_000 })
    expect(none.total).toBe(0)
    const recent = await queue.list({ createdFrom: started - 1000, limit: 2, countLimit: 3 })
    expect(recent.tasks).toHaveLength(2)
    expect(recent.total).toBe(3)
    expect((await queue.list({ createdFrom: started - 1000 })).total).toBe(8)
  })

  it('runs a schedule now with its input and tenant', async () => {
    await queue.schedules.upsert({ id: 'nightly', cron: '0 3 * * *', task: job, input: {}, tenantId: 'b' })
    const { id } = await triggerSchedule(queue, 'nightly')
    const done = await waitForTask(queue, id)
    expect(done).toMatchObject({ status: 'completed', tenantId: 'b' })
    await expect(triggerSchedule(queue, 'missing')).rejects.toMatchObject({ code: 'NOT_FOUND' })
  })

  it('answers null where a Redis-only queue keeps no record', async () => {
    const bare = createQueue({ name: uniqueName('ins-r'), redis: REDIS_URL, logger: silent })
    try {
      expect(queueMode(bare)).toBe('redis-only')
      expect(await queueActivity(bare)).toBeNull()
      expect(await deadLetterGroups(bare)).toBeNull()
      expect(await queueSnapshot(bare, { tenantId: 'a' })).toBeNull()
      expect(await queueSnapshot(bare)).toMatchObject({ history: false, dead: 0 })
    } finally {
      await bare.close()
    }
  })
})

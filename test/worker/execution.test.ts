import { describe, expect, it, vi } from 'vitest'
import { z } from 'zod'
import { defineTask, NonRetryableError, type TaskContext } from '../../src/index.js'
import { waitForTask } from '../../src/testing.js'
import { backends, sleep, trackWorker, until } from '../helpers/backends.js'

const echo = defineTask({ name: 'echo', input: z.object({ n: z.number() }) })
const fast = { baseMs: 10, maxMs: 50, jitter: 0 }

for (const backend of backends) {
  describe.skipIf(!backend.available)(`worker execution (${backend.label})`, () => {
    it('runs the handler with typed, validated input and stores its result', async () => {
      const queue = backend.queue()
      const worker = trackWorker({ queue, concurrency: 2 })
      let seen: TaskContext | undefined
      worker.handle(echo, async (input, ctx) => {
        seen = ctx
        return { doubled: input.n * 2 }
      })
      await worker.start()
      const { id } = await queue.submit(echo, { n: 21 }, { tenantId: 'acme' })
      const done = await waitForTask<{ doubled: number }>(queue, id)
      expect(done.status).toBe('completed')
      expect(done.result).toEqual({ doubled: 42 })
      expect(done.attempts).toBe(1)
      expect(done.durationMs).toBeGreaterThanOrEqual(0)
      expect(done.startedAt!.getTime()).toBeLessThanOrEqual(done.completedAt!.getTime())
      expect(done.workerId).toBe(worker.id)
      expect(seen).toMatchObject({ taskId: id, attempt: 1, tenantId: 'acme' })
      expect(seen!.fencingToken).toBeGreaterThan(0)
      expect(seen!.signal.aborted).toBe(false)
      await worker.close()
    })

    it('runs critical before high before normal before low, first in first out within a level', async () => {
      const queue = backend.queue()
      const order: number[] = []
      const levels = ['low', 'normal', 'high', 'critical'] as const
      for (let i = 0; i < 12; i++) await queue.submit(echo, { n: i }, { priority: levels[i % 4] })
      const worker = trackWorker({ queue, concurrency: 1 })
      worker.handle(echo, ({ n }) => void order.push(n))
      await worker.start()
      await until(() => order.length === 12)
      await worker.close()
      expect(order).toEqual([3, 7, 11, 2, 6, 10, 1, 5, 9, 0, 4, 8])
    })

    it('retries a failing task with backoff and records each failed attempt', async () => {
      const queue = backend.queue()
      const worker = trackWorker({ queue, backoff: { baseMs: 100, maxMs: 1000, jitter: 0 } })
      const startedAt: number[] = []
      worker.handle(echo, (_input, ctx) => {
        startedAt.push(Date.now())
        if (ctx.attempt < 3) throw new Error(`boom ${ctx.attempt}`)
        return 'ok'
      })
      await worker.start()
      const { id } = await queue.submit(echo, { n: 1 }, { maxRetries: 3 })
      const done = await waitForTask(queue, id)
      await worker.close()
      expect(done).toMatchObject({ status: 'completed', result: 'ok', attempts: 3, retryCount: 2 })
      expect(done.history.map((h) => [h.attempt, h.outcome, h.error.message])).toEqual([
        [1, 'error', 'boom 1'],
        [2, 'error', 'boom 2'],
      ])
      // 100 ms, then 200 ms: exponential.
      expect(startedAt[1]! - startedAt[0]!).toBeGreaterThanOrEqual(95)
      expect(startedAt[2]! - startedAt[1]!).toBeGreaterThanOrEqual(195)
    })

    it('dead-letters a task after its last retry, and a DLQ retry gives it a fresh budget', async () => {
      const queue = backend.queue()
      const worker = trackWorker({ queue, backoff: fast })
      let healthy = false
      worker.handle(echo, () => {
        if (!healthy) throw new Error('downstream is down')
        return 'recovered'
      })
      await worker.start()
      const { id } = await queue.submit(echo, { n: 1 }, { maxRetries: 2 })
      const dead = await waitForTask(queue, id)
      // Three attempts: the first and two retries.
      expect(dead).toMatchObject({ status: 'failed', attempts: 3, retryCount: 2 })
      expect(dead.durationMs).toEqual(expect.any(Number))
      expect(dead.error?.message).toBe('downstream is down')
      const page = await queue.dlq.list()
      expect(page.total).toBe(1)
      expect(page.tasks[0]).toMatchObject({ id, status: 'failed' })
      expect(page.tasks[0]!.history).toHaveLength(3)

      healthy = true
      await queue.dlq.retry(id)
      const done = await waitForTask(queue, id)
      await worker.close()
      // Four attempts over its life: the DLQ retry's run is the third retry.
      expect(done).toMatchObject({ status: 'completed', result: 'recovered', attempts: 1, retryCount: 3 })
      expect((await queue.dlq.list()).total).toBe(0)
      await expect(queue.dlq.retry(id)).rejects.toMatchObject({ code: 'NOT_IN_DLQ' })
    })

    it('retries every dead-lettered task at once', async () => {
      const queue = backend.queue()
      const worker = trackWorker({ queue, backoff: fast })
      let healthy = false
      worker.handle(echo, () => {
        if (!healthy) throw new NonRetryableError('bad')
      })
      await worker.start()
      const ids = await Promise.all([1, 2, 3].map(async (n) => (await queue.submit(echo, { n })).id))
      await until(async () => (await queue.dlq.list()).total === 3)
      healthy = true
      expect(await queue.dlq.retryAll()).toBe(3)
      for (const id of ids) expect((await waitForTask(queue, id)).status).toBe('completed')
      await worker.close()
    })

    it('skips the retries when the handler throws NonRetryableError', async () => {
      const queue = backend.queue()
      const worker = trackWorker({ queue, backoff: fast })
      const handler = vi.fn(() => {
        throw new NonRetryableError('invalid account')
      })
      worker.handle(echo, handler)
      await worker.start()
      const { id } = await queue.submit(echo, { n: 1 }, { maxRetries: 5 })
      const dead = await waitForTask(queue, id)
      await worker.close()
      expect(dead.status).toBe('failed')
      expect(handler).toHaveBeenCalledTimes(1)
      expect(dead.error).toMatchObject({ name: 'NonRetryableError', message: 'invalid account' })
    })

    it('fails an attempt whose handler throws null or undefined, like any other error', async () => {
      const queue = backend.queue()
      const worker = trackWorker({ queue, backoff: fast })
      worker.handle(echo, (input) => {
        // biome-ignore lint/complexity/noUselessUndefined: the point is a rejection with no reason
        return Promise.reject(input.n === 1 ? null : undefined)
      })
      await worker.start()
      const a = await queue.submit(echo, { n: 1 }, { maxRetries: 1 })
      const b = await queue.submit(echo, { n: 2 }, { maxRetries: 0 })
      const [deadA, deadB] = [await waitForTask(queue, a.id), await waitForTask(queue, b.id)]
      await worker.close()
      expect(deadA).toMatchObject({ status: 'failed', attempts: 2, error: { message: 'null' } })
      expect(deadB).toMatchObject({ status: 'failed', attempts: 1 })
      expect(worker.stats().failed).toBe(3)
    })

    it('aborts a handler at its timeout, counts the attempt, and discards its late result', async () => {
      const queue = backend.queue()
      const worker = trackWorker({ queue, backoff: fast })
      const aborted: unknown[] = []
      worker.handle(echo, async (_input, ctx) => {
        if (ctx.attempt === 1) {
          ctx.signal.addEventListener('abort', () => aborted.push(ctx.signal.reason))
          await sleep(400) // ignores the signal on purpose, then returns a result nobody must see
          return 'late'
        }
        return 'on time'
      })
      await worker.start()
      const { id } = await queue.submit(echo, { n: 1 }, { timeoutMs: 100, maxRetries: 1 })
      const done = await waitForTask(queue, id)
      await sleep(400)
      await worker.close()
      expect(aborted).toHaveLength(1)
      expect((aborted[0] as Error).name).toBe('TaskTimeoutError')
      expect(done.history[0]?.outcome).toBe('timeout')
      expect((await queue.get(id))?.result).toBe('on time')
    })

    it('keeps renewing the lease of a long handler so no other worker takes it', async () => {
      const queue = backend.queue()
      const runs: string[] = []
      const handler = async (_: { n: number }, ctx: TaskContext) => {
        runs.push(ctx.taskId)
        await sleep(700)
      }
      const a = trackWorker({ queue, leaseMs: 200 }).handle(echo, handler)
      const b = trackWorker({ queue: backend.peer(queue), leaseMs: 200 }).handle(echo, handler)
      await a.start()
      await b.start()
      const { id } = await queue.submit(echo, { n: 1 })
      const done = await waitForTask(queue, id)
      await Promise.all([a.close(), b.close()])
      expect(done.status).toBe('completed')
      expect(runs).toEqual([id])
    })

    it('lets a handler extend its own lease', async () => {
      const queue = backend.queue()
      const worker = trackWorker({ queue, leaseMs: 200 })
      let extended = false
      worker.handle(echo, async (_input, ctx) => {
        await ctx.extendLease(10_000)
        extended = true
        await expect(ctx.extendLease(0)).rejects.toMatchObject({ code: 'INVALID_OPTIONS' })
      })
      await worker.start()
      const { id } = await queue.submit(echo, { n: 1 })
      expect((await waitForTask(queue, id)).status).toBe('completed')
      await worker.close()
      expect(extended).toBe(true)
    })

    it('fails an attempt for a task name no handler is registered for', async () => {
      const queue = backend.queue()
      const other = defineTask({ name: 'other', input: z.object({}) })
      const worker = trackWorker({ queue, backoff: fast }).handle(echo, () => 'x')
      await worker.start()
      const { id } = await queue.submit(other, {}, { maxRetries: 1 })
      const dead = await waitForTask(queue, id)
      await worker.close()
      expect(dead.status).toBe('failed')
      expect(dead.history.map((h) => h.outcome)).toEqual(['no-handler', 'no-handler'])
      expect(dead.error?.message).toMatch(/no handler for task other/)
    })

    it('fails a result that cannot be stored instead of losing it silently', async () => {
      const queue = backend.queue()
      const worker = trackWorker({ queue, backoff: fast }).handle(echo, () => ({ big: 1n }))
      await worker.start()
      const { id } = await queue.submit(echo, { n: 1 }, { maxRetries: 0 })
      const dead = await waitForTask(queue, id)
      await worker.close()
      expect(dead.status).toBe('failed')
      expect(dead.error?.message).toMatch(/JSON/)
    })

    it('makes a delayed task claimable at its time, not before', async () => {
      const queue = backend.queue()
      const worker = trackWorker({ queue }).handle(echo, () => Date.now())
      await worker.start()
      const { id } = await queue.submit(echo, { n: 1 }, { delayMs: 1000 })
      expect((await queue.get(id))?.status).toBe('pending')
      const done = await waitForTask<number>(queue, id)
      await worker.close()
      expect(done.result!).toBeGreaterThanOrEqual(done.runAt.getTime())
      expect(done.runAt.getTime() - done.createdAt.getTime()).toBe(1000)
      // Within 100 ms of the due time on a quiet machine; a loose bound here, the figure is in bench/.
      expect(done.startedAt!.getTime() - done.runAt.getTime()).toBeLessThan(1000)
    })

    it('moves many tasks per claim round trip when busy', async () => {
      const queue = backend.queue()
      await queue.submitMany(Array.from({ length: 400 }, (_, n) => ({ task: echo, input: { n } })))
      const broker = (queue as unknown as { broker: { claim: (...a: unknown[]) => unknown } }).broker
      const claims = vi.spyOn(broker, 'claim')
      let done = 0
      const worker = trackWorker({ queue, concurrency: 100 }).handle(echo, () => void done++)
      await worker.start()
      await until(() => done === 400)
      await until(async () => (await queue.counts()).processing === 0)
      await worker.close()
      expect(claims.mock.calls.length).toBeLessThan(40)
    })

    it('emits events, and a throwing listener does not stop the worker', async () => {
      const queue = backend.queue()
      const worker = trackWorker({ queue }).handle(echo, ({ n }) => n)
      const completed: unknown[] = []
      worker.on('task:completed', () => {
        throw new Error('listener bug')
      })
      worker.on('task:completed', ({ result }) => completed.push(result))
      await worker.start()
      await queue.submit(echo, { n: 1 })
      await queue.submit(echo, { n: 2 })
      await until(() => completed.length === 2)
      await worker.close()
      expect(completed.sort()).toEqual([1, 2])
    })

    it('gives the handler a logger bound to its task, tenant and worker', async () => {
      const lines: object[] = []
      const capture = { debug() {}, info: (obj: object) => void lines.push(obj), warn() {}, error() {} }
      const queue = backend.queue({ logger: capture })
      const worker = trackWorker({ queue }).handle(echo, (_input, ctx) =>
        ctx.logger.info({ step: 'inside' }, 'hello'),
      )
      await worker.start()
      const { id } = await queue.submit(echo, { n: 1 }, { tenantId: 'acme' })
      await waitForTask(queue, id)
      await worker.close()
      expect(lines).toContainEqual({ worker_id: worker.id, task_id: id, tenant_id: 'acme', step: 'inside' })
    })

    it('rejects bad worker options and a second handler for one task', () => {
      const queue = backend.queue()
      expect(() => trackWorker({ queue, concurrency: 0 })).toThrow(/concurrency/)
      expect(() => trackWorker({ queue, leaseMs: 5 })).toThrow(/leaseMs/)
      const worker = trackWorker({ queue }).handle(echo, () => 1)
      expect(() => worker.handle(echo, () => 2)).toThrow(/already registered/)
    })
  })
}

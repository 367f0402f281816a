/**
 * Flow control through the public API, on every backend: a handler's RateLimitedError and
 * `ctx.rateLimit`, pause and resume seen by another process's queue handle, fairness end to end.
 */
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { defineTask, RateLimitedError } from '../../src/index.js'
import { waitForTask } from '../../src/testing.js'
import { backends, sleep, trackWorker, until } from '../helpers/backends.js'

const job = defineTask({ name: 'job', input: z.object({ n: z.number() }) })
const other = defineTask({ name: 'other', input: z.object({ n: z.number() }) })

for (const backend of backends) {
  describe.skipIf(!backend.available)(`flow control (${backend.label})`, () => {
    it('gives a rate-limited task back without an attempt; its group waits, others run, and it resumes on time', async () => {
      const queue = backend.queue()
      const runs: { tenant: string; attempt: number; at: number }[] = []
      let limited = false
      // A long poll interval: only the broker's wake time can bring the group back on time.
      const worker = trackWorker({ queue, concurrency: 1, pollIntervalMs: 10_000 })
      worker.handle(job, async (_input, ctx) => {
        runs.push({ tenant: ctx.tenantId, attempt: ctx.attempt, at: Date.now() })
        if (ctx.tenantId === 'acme' && !limited) {
          limited = true
          throw new RateLimitedError({ retryAfterMs: 400 })
        }
        return 1
      })
      const throttled: number[] = []
      worker.on('task:rate-limited', ({ until }) => throttled.push(until))
      const a = await queue.submit(job, { n: 1 }, { tenantId: 'acme' })
      const a2 = await queue.submit(job, { n: 2 }, { tenantId: 'acme' })
      const b = await queue.submit(job, { n: 3 }, { tenantId: 'beta' })
      await worker.start()
      for (const { id } of [a, a2, b])
        expect((await waitForTask(queue, id, { timeoutMs: 8000 })).status).toBe('completed')
      await worker.close()
      expect(throttled).toHaveLength(1)
      const first = runs[0]!
      expect(first).toMatchObject({ tenant: 'acme', attempt: 1 })
      const retried = runs.filter((r) => r.tenant === 'acme').slice(1)
      // Not before the wait is over, and long before the poll interval: woken by the wait's end.
      expect(retried[0]!.at - first.at).toBeGreaterThanOrEqual(400)
      expect(retried[0]!.at - first.at).toBeLessThan(3000)
      expect(retried.map((r) => r.attempt)).toEqual([1, 1])
      const beta = runs.find((r) => r.tenant === 'beta')!
      expect(beta.at).toBeLessThan(retried[0]!.at)
      expect((await queue.get(a.id))!.history).toEqual([])
    })

    it('ctx.rateLimit stops one task name, not the others', async () => {
      const queue = backend.queue()
      const order: string[] = []
      let limited = false
      const worker = trackWorker({ queue, concurrency: 1, pollIntervalMs: 10_000 })
      worker.handle(job, (_input, ctx) => {
        order.push('job')
        if (!limited) {
          limited = true
          return ctx.rateLimit(300, { scope: 'task' })
        }
        return 1
      })
      worker.handle(other, () => {
        order.push('other')
        return 2
      })
      const j = await queue.submit(job, { n: 1 })
      const o = await queue.submit(other, { n: 1 })
      await worker.start()
      await waitForTask(queue, j.id, { timeoutMs: 8000 })
      await waitForTask(queue, o.id, { timeoutMs: 8000 })
      await worker.close()
      expect(order).toEqual(['job', 'other', 'job'])
    })

    it("pauses and resumes fleet-wide: another process's queue handle stops this worker", async () => {
      const queue = backend.queue()
      const admin = backend.peer(queue)
      const ran: string[] = []
      const worker = trackWorker({ queue, concurrency: 2, pollIntervalMs: 50 })
      worker.handle(job, () => ran.push('job'))
      worker.handle(other, () => ran.push('other'))
      await worker.start()
      await admin.pause()
      const held = await queue.submit(job, { n: 1 })
      const named = await queue.submit(other, { n: 2 })
      await sleep(300)
      expect(ran).toEqual([])
      const counts = await admin.counts({ flow: true })
      expect(counts.flow?.paused.queue).toBe(true)
      expect(counts.ready.normal).toBe(2)
      // The queue resumes, but the task name 'job' stays paused: only 'other' runs.
      await admin.pause({ task: 'job' })
      await admin.resume()
      expect((await waitForTask(queue, named.id, { timeoutMs: 5000 })).status).toBe('completed')
      await sleep(200)
      expect(ran).toEqual(['other'])
      expect((await admin.counts({ flow: true })).flow?.paused).toEqual({
        queue: false,
        tasks: ['job'],
        groups: [],
      })
      await admin.resume({ task: 'job' })
      expect((await waitForTask(queue, held.id, { timeoutMs: 5000 })).status).toBe('completed')
      await worker.close()
      expect(ran).toEqual(['other', 'job'])
    })

    it('serves a small tenant between the tasks of a big one under fairness', async () => {
      const queue = backend.queue({ fairness: 'tenant' })
      const order: string[] = []
      const worker = trackWorker({ queue, concurrency: 1, batchSize: 1 })
      worker.handle(job, (_input, ctx) => {
        order.push(ctx.tenantId)
        return 1
      })
      await queue.submitMany(
        Array.from({ length: 30 }, (_, n) => ({ task: job, input: { n }, options: { tenantId: 'big' } })),
      )
      const small = await queue.submit(job, { n: 0 }, { tenantId: 'small' })
      await worker.start()
      await waitForTask(queue, small.id, { timeoutMs: 8000 })
      await until(() => order.length === 31, 8000, 'every task to run')
      await worker.close()
      expect(order.indexOf('small')).toBeLessThanOrEqual(1)
    })

    it('refuses invalid flow options and pause targets', async () => {
      expect(() => backend.queue({ fairness: 'everyone' as 'tenant' })).toThrow(/fairness/)
      expect(() => backend.queue({ limits: [{ per: 'group', max: 0, durationMs: 10 }] })).toThrow(/limits/)
      const queue = backend.queue()
      await expect(queue.pause({ task: 'a', group: 'b' })).rejects.toMatchObject({ code: 'INVALID_OPTIONS' })
      await expect(queue.pause({ group: 'has space' })).rejects.toMatchObject({ code: 'INVALID_OPTIONS' })
      await expect(queue.submit(job, { n: 1 }, { group: 'has space' })).rejects.toMatchObject({
        code: 'INVALID_OPTIONS',
      })
    })
  })
}

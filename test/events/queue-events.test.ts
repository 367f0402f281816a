/**
 * queue.events and queue.waitFor (issue 17) on every backend: typed events in order, a
 * subscription resumed after its last id, and waitFor at once, after, on timeout and for an unknown id.
 */
import { randomUUID } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import type { QueueEvents } from '../../src/events/types.js'
import { defineTask, NonRetryableError } from '../../src/index.js'
import { backends, sleep, trackWorker, until } from '../helpers/backends.js'

const job = defineTask({ name: 'job', input: z.object({ fail: z.boolean().optional() }) })
const fast = { baseMs: 10, maxMs: 10, jitter: 0 }

for (const backend of backends) {
  describe.skipIf(!backend.available)(`queue events (${backend.label})`, () => {
    it('tells listeners what happened to each task, typed, in order', async () => {
      const queue = backend.queue()
      const seen: string[] = []
      let progress: QueueEvents['progress'] | undefined
      let failed: QueueEvents['failed'][] = []
      queue.events.on('queued', (e) => seen.push(`queued ${e.taskId}`))
      queue.events.on('progress', (e) => {
        progress = e
        seen.push(`progress ${e.taskId}`)
      })
      queue.events.on('completed', (e) => seen.push(`completed ${e.taskId}`))
      queue.events.on('retrying', (e) => seen.push(`retrying ${e.taskId} ${e.attempt}`))
      queue.events.on('dead', (e) => seen.push(`dead ${e.taskId} ${e.error.message}`))
      queue.events.on('failed', (e) => {
        failed.push(e)
      })
      await queue.events.live().ready
      const worker = trackWorker({ queue, backoff: fast })
      worker.handle(job, async ({ fail }, ctx) => {
        await ctx.progress({ half: true })
        if (fail && ctx.attempt === 1) throw new Error('flaky')
        if (fail) throw new NonRetryableError('broken')
      })
      const ok = await queue.submit(job, {})
      const bad = await queue.submit(job, { fail: true }, { maxRetries: 3 })
      await worker.start()
      await queue.waitFor(ok.id)
      await queue.waitFor(bad.id)
      await until(() => seen.includes(`dead ${bad.id} broken`))
      const of = (id: string) => seen.filter((s) => s.includes(id))
      expect(of(ok.id)).toEqual([`queued ${ok.id}`, `progress ${ok.id}`, `completed ${ok.id}`])
      expect(of(bad.id)).toEqual([
        `queued ${bad.id}`,
        `progress ${bad.id}`,
        `retrying ${bad.id} 1`,
        `progress ${bad.id}`,
        `dead ${bad.id} broken`,
      ])
      expect(progress).toMatchObject({ name: 'job', tenantId: 'default', progress: { half: true } })
      expect(progress!.at).toBeInstanceOf(Date)
      expect(failed.map((f) => [f.taskId, f.willRetry, f.error.message])).toEqual([
        [bad.id, true, 'flaky'],
        [bad.id, false, 'broken'],
      ])
      failed = []
      await worker.close()
    })

    it('resumes a subscription after the last event id it handled', async () => {
      const queue = backend.queue()
      const first = queue.events.subscribe()
      const before: string[] = []
      first.on('cancelled', (e) => before.push(e.taskId))
      await first.ready
      const a = await queue.submit(job, {}, { delayMs: 60_000 })
      await queue.cancel(a.id)
      await until(() => before.length === 1)
      const lastId = first.lastId
      await first.close()
      // Meanwhile, with nobody subscribed (within keepMs of the last listener), more happens.
      const b = await queue.submit(job, {}, { delayMs: 60_000 })
      await queue.cancel(b.id)
      const resumed = queue.events.subscribe({ from: lastId })
      const after: string[] = []
      resumed.on('queued', (e) => after.push(`queued ${e.taskId}`))
      resumed.on('cancelled', (e) => after.push(`cancelled ${e.taskId}`))
      await until(() => after.length === 2)
      await sleep(50)
      expect(after).toEqual([`queued ${b.id}`, `cancelled ${b.id}`])
      expect(() => queue.events.subscribe({ from: 'yesterday' })).toThrow(/event id/)
      await resumed.close()
    })

    it('waitFor answers at once for a finished task, later for a running one, and times out', async () => {
      const queue = backend.queue()
      const worker = trackWorker({ queue })
      let release = () => {}
      const gate = new Promise<void>((r) => (release = r))
      worker.handle(job, async () => {
        await gate
        return 'done'
      })
      await worker.start()
      const { id } = await queue.submit(job, {})
      await expect(queue.waitFor(id, { timeoutMs: 100 })).rejects.toMatchObject({ code: 'TIMEOUT' })
      const waiting = queue.waitFor(id, { timeoutMs: 10_000 })
      await sleep(50)
      release()
      expect(await waiting).toMatchObject({ id, status: 'completed', result: 'done' })
      const started = Date.now()
      expect(await queue.waitFor(id, { timeoutMs: 10_000 })).toMatchObject({ status: 'completed' })
      expect(Date.now() - started).toBeLessThan(1000)
      await expect(queue.waitFor(randomUUID(), { timeoutMs: 1000 })).rejects.toMatchObject({
        code: 'NOT_FOUND',
      })
      await expect(queue.waitFor(id, { timeoutMs: 0 })).rejects.toMatchObject({ code: 'INVALID_OPTIONS' })
      await worker.close()
    })

    it('waitFor rejects with CLOSED when the queue closes meanwhile', async () => {
      const queue = backend.queue()
      const { id } = await queue.submit(job, {}, { delayMs: 60_000 })
      const waiting = queue.waitFor(id, { timeoutMs: 10_000 })
      const rejected = expect(waiting).rejects.toMatchObject({ code: 'CLOSED' })
      await sleep(50)
      await queue.close()
      await rejected
    })

    it('waitFor resolves for a cancelled task', async () => {
      const queue = backend.queue()
      const { id } = await queue.submit(job, {}, { delayMs: 60_000 })
      const waiting = queue.waitFor(id, { timeoutMs: 10_000 })
      await sleep(20)
      await queue.cancel(id)
      expect((await waiting).status).toBe('cancelled')
    })
  })
}

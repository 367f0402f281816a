import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { defineTask, type Worker } from '../../src/index.js'
import { internals } from '../../src/queue/internal.js'
import { waitForTask } from '../../src/testing.js'
import { backends, sleep, trackWorker, until } from '../helpers/backends.js'

const job = defineTask({ name: 'job', input: z.object({ n: z.number() }) })

/** Simulates a worker whose process stalls (GC pause, partition): it stops renewing its leases. */
function stopRenewing(worker: Worker): void {
  ;(worker as unknown as { renewLeases: () => Promise<void> }).renewLeases = async () => {}
}

for (const backend of backends) {
  describe.skipIf(!backend.available)(`leases and fencing (${backend.label})`, () => {
    it('re-delivers a task whose worker vanished once its lease expires', async () => {
      const queue = backend.queue()
      const broker = queue[internals].broker
      const { id } = await queue.submit(job, { n: 1 })
      // A worker that claims and then dies: nobody renews, completes or releases.
      const ghost = await broker.claim('ghost', 1, 200, Date.now())
      expect(ghost.tasks.map((t) => t.id)).toEqual([id])

      const worker = trackWorker({ queue, leaseMs: 5000 }).handle(job, (_input, ctx) => ctx.attempt)
      await worker.start()
      const done = await waitForTask(queue, id)
      await worker.close()
      expect(done).toMatchObject({ status: 'completed', result: 2, attempts: 2, workerId: worker.id })
      expect(done.history).toMatchObject([{ attempt: 1, workerId: 'ghost', outcome: 'lease-expired' }])
      expect(done.startedAt!.getTime() - ghost.tasks[0]!.runAt).toBeGreaterThanOrEqual(190)
    })

    it('rejects a completion with a stale fencing token, so the winner stands', async () => {
      const queue = backend.queue()
      const broker = queue[internals].broker
      const { id } = await queue.submit(job, { n: 1 })
      const first = (await broker.claim('slow', 1, 100, Date.now())).tasks[0]!
      const worker = trackWorker({ queue }).handle(job, () => 'winner')
      await worker.start()
      await until(async () => (await queue.get(id))?.status === 'completed')
      await worker.close()
      const late = await broker.complete([{ id, token: first.token, result: '"loser"' }], Date.now())
      expect(late).toEqual(['stale'])
      const failed = await broker.fail(
        [{ id, token: first.token, error: { name: 'E', message: 'x' }, outcome: 'error', retryAt: null }],
        Date.now(),
      )
      expect(failed).toEqual(['stale'])
      expect(await broker.extend([{ id, token: first.token }], 1000, Date.now())).toEqual(['stale'])
      expect((await queue.get(id))?.result).toBe('winner')
    })

    it('discards the result of a handler that outlived its lease', async () => {
      const queue = backend.queue()
      let releaseSlow!: () => void
      const slowGate = new Promise<void>((r) => (releaseSlow = r))
      const stale: string[] = []
      const slow = trackWorker({ queue, leaseMs: 200, id: 'slow', concurrency: 1 }).handle(job, async () => {
        await slowGate
        return 'from the slow worker'
      })
      stopRenewing(slow)
      slow.on('task:stale', ({ stage }) => stale.push(stage))
      await slow.start()
      const { id } = await queue.submit(job, { n: 1 })
      await until(async () => (await queue.get(id))?.status === 'processing')

      const fast = trackWorker({ queue: backend.peer(queue), id: 'fast' }).handle(
        job,
        () => 'from the fast worker',
      )
      await fast.start()
      const done = await waitForTask(queue, id)
      expect(done).toMatchObject({ result: 'from the fast worker', workerId: 'fast', attempts: 2 })

      releaseSlow()
      await until(() => stale.length === 1)
      await Promise.all([slow.close(), fast.close()])
      expect(stale).toEqual(['complete'])
      expect((await queue.get(id))?.result).toBe('from the fast worker')
    })

    it('aborts the signal of a handler whose lease was taken over', async () => {
      const queue = backend.queue()
      const worker = trackWorker({ queue, leaseMs: 150, concurrency: 1 })
      const reasons: string[] = []
      worker.handle(job, async (_input, ctx) => {
        if (ctx.attempt > 1) return 'second'
        await new Promise<void>((resolve) =>
          ctx.signal.addEventListener('abort', () => {
            reasons.push((ctx.signal.reason as Error).name)
            resolve()
          }),
        )
      })
      // Renewals pause for one round: another claimer takes the task, then renewals resume and fail.
      const realRenew = (worker as unknown as { renewLeases: () => Promise<void> }).renewLeases.bind(worker)
      stopRenewing(worker)
      await worker.start()
      const { id } = await queue.submit(job, { n: 1 })
      await until(async () => (await queue.get(id))?.status === 'processing')
      await sleep(200)
      const thief = await queue[internals].broker.claim('thief', 1, 10_000, Date.now())
      expect(thief.tasks).toHaveLength(1)
      await realRenew()
      await until(() => reasons.length === 1)
      await worker.close()
      expect(reasons).toEqual(['LeaseLostError'])
    })
  })

  describe.skipIf(!backend.available)(`graceful shutdown (${backend.label})`, () => {
    it('lets running handlers finish within the grace period', async () => {
      const queue = backend.queue()
      const worker = trackWorker({ queue }).handle(job, async () => {
        await sleep(200)
        return 'finished'
      })
      await worker.start()
      const { id } = await queue.submit(job, { n: 1 })
      await until(() => worker.activeCount === 1)
      await worker.close({ graceMs: 5000 })
      // The outcome is settled with the broker when close() returns; in durable mode a read shows
      // it once the store has it too, which the queue's flusher does on its own time.
      expect(await queue.waitFor(id, { timeoutMs: 5000 })).toMatchObject({
        status: 'completed',
        result: 'finished',
      })
    })

    it('stops claiming at close', async () => {
      const queue = backend.queue()
      let runs = 0
      const worker = trackWorker({ queue }).handle(job, () => void runs++)
      await worker.start()
      await worker.close()
      await queue.submit(job, { n: 1 })
      await sleep(100)
      expect(runs).toBe(0)
      expect((await queue.counts()).ready.normal).toBe(1)
    })

    it('gives unfinished leases back at once, without counting the attempt', async () => {
      const queue = backend.queue()
      const aborted: string[] = []
      const stuck = trackWorker({ queue, leaseMs: 60_000 }).handle(job, async (_input, ctx) => {
        await new Promise<void>((resolve) =>
          ctx.signal.addEventListener('abort', () => {
            aborted.push((ctx.signal.reason as Error).message)
            resolve()
          }),
        )
        return 'too late'
      })
      await stuck.start()
      const { id } = await queue.submit(job, { n: 1 })
      await until(() => stuck.activeCount === 1)
      const closing = Date.now()
      await stuck.close({ graceMs: 100 })
      expect(Date.now() - closing).toBeLessThan(2000)
      expect(aborted).toHaveLength(1)
      expect(await queue.get(id)).toMatchObject({ status: 'queued', attempts: 0 })

      // Another worker takes it right away, long before the 60 s lease would have expired.
      const next = trackWorker({ queue: backend.peer(queue) }).handle(job, (_input, ctx) => ctx.attempt)
      await next.start()
      const done = await waitForTask(queue, id, { timeoutMs: 3000 })
      await next.close()
      expect(done).toMatchObject({ status: 'completed', result: 1 })
    })
  })
}

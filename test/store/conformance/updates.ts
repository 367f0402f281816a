/** Store conformance: state changes from the broker, applied in batches and never backwards. */
import { describe, expect, it } from 'vitest'
import type { AttemptRecord } from '../../../src/task/model.js'
import { claimed, completed, newRow, rows, T0 } from '../fixtures.js'
import type { Harness } from '../harness.js'

const failedAttempt = (attempt: number, endedAt: number): AttemptRecord => ({
  attempt,
  workerId: 'w1',
  startedAt: endedAt - 5,
  endedAt,
  outcome: 'error',
  error: { name: 'Error', message: `boom ${attempt}` },
})

export function updatesSuite(h: Harness): void {
  describe('applyUpdates', () => {
    async function storeWithTask() {
      const opened = await h.open()
      const row = newRow()
      await opened.store.insertTasks([row])
      return { ...opened, id: row.id }
    }

    it('records a claim and a completion with timings, worker and result', async () => {
      const { store, id } = await storeWithTask()
      expect(await store.applyUpdates([claimed(id, 1, T0 + 10)])).toBe(1)
      expect(await store.get(id)).toMatchObject({
        status: 'processing',
        attempt: 1,
        startedAt: T0 + 10,
        workerId: 'w1',
      })
      expect(await store.applyUpdates([completed(id, 1, T0 + 50, '{"sent": 3}')])).toBe(1)
      const task = await store.get(id)
      expect(task).toMatchObject({
        status: 'completed',
        startedAt: T0 + 10,
        finishedAt: T0 + 50,
        updatedAt: T0 + 50,
      })
      expect(JSON.parse(task!.result!)).toEqual({ sent: 3 })
    })

    it('applies several changes of one task in one call, in order', async () => {
      const { store, id, statements, resetStatements } = await storeWithTask()
      resetStatements()
      const applied = await store.applyUpdates([
        { id, status: 'queued', attempt: 0, at: T0 + 5 },
        claimed(id, 1, T0 + 10),
        completed(id, 1, T0 + 20),
      ])
      expect(applied).toBe(3)
      // The claim and the completion of one attempt merge: one statement for them, one before.
      expect(statements()).toBe(2)
      expect(await store.get(id)).toMatchObject({
        status: 'completed',
        startedAt: T0 + 10,
        finishedAt: T0 + 20,
        workerId: 'w1',
      })
    })

    it('merges a claim and its completion into one statement, keeping the start time and worker', async () => {
      const { store, id, statements, resetStatements } = await storeWithTask()
      resetStatements()
      expect(await store.applyUpdates([claimed(id, 1, T0 + 10, 'w7'), completed(id, 1, T0 + 20)])).toBe(2)
      expect(statements()).toBe(1)
      expect(await store.get(id)).toMatchObject({
        status: 'completed',
        attempt: 1,
        startedAt: T0 + 10,
        finishedAt: T0 + 20,
        workerId: 'w7',
      })
    })

    it('keeps a terminal task terminal when a terminal and then an older claim are replayed', async () => {
      const { store, id } = await storeWithTask()
      await store.applyUpdates([claimed(id, 1, T0 + 10), completed(id, 1, T0 + 20)])
      expect(await store.applyUpdates([completed(id, 1, T0 + 20)])).toBe(0)
      expect(await store.applyUpdates([claimed(id, 1, T0 + 10), claimed(id, 2, T0 + 30)])).toBe(0)
      expect(await store.applyUpdates([{ id, status: 'cancelled', attempt: 1, at: T0 + 40 }])).toBe(0)
      expect(await store.get(id)).toMatchObject({ status: 'completed', finishedAt: T0 + 20, attempt: 1 })
    })

    it('never moves a task back: an earlier attempt or an older waiting state is ignored', async () => {
      const { store, id } = await storeWithTask()
      await store.applyUpdates([claimed(id, 2, T0 + 20, 'w2')])
      expect(await store.applyUpdates([claimed(id, 1, T0 + 10)])).toBe(0)
      expect(await store.applyUpdates([{ id, status: 'queued', attempt: 1, at: T0 + 15 }])).toBe(0)
      expect(await store.get(id)).toMatchObject({ status: 'processing', attempt: 2, workerId: 'w2' })
    })

    it("lets a later attempt's claim overwrite an earlier one's", async () => {
      const { store, id } = await storeWithTask()
      await store.applyUpdates([claimed(id, 1, T0 + 10, 'w1')])
      expect(await store.applyUpdates([claimed(id, 2, T0 + 5, 'w2')])).toBe(1)
      expect(await store.get(id)).toMatchObject({
        status: 'processing',
        attempt: 2,
        workerId: 'w2',
        startedAt: T0 + 5,
      })
    })

    it('records a retry once, however often the failure is replayed', async () => {
      const { store, id } = await storeWithTask()
      const retry = {
        id,
        status: 'pending' as const,
        attempt: 1,
        at: T0 + 20,
        runAt: T0 + 1020,
        error: { name: 'Error', message: 'boom 1' },
        failedAttempt: failedAttempt(1, T0 + 20),
      }
      await store.applyUpdates([claimed(id, 1, T0 + 10), retry])
      expect(await store.applyUpdates([retry])).toBe(1)
      const task = await store.get(id)
      expect(task).toMatchObject({ status: 'pending', attempt: 1, retryCount: 1, runAt: T0 + 1020 })
      expect(task?.history).toEqual([failedAttempt(1, T0 + 20)])
      expect(task?.error).toEqual({ name: 'Error', message: 'boom 1' })
      expect(await store.applyUpdates([claimed(id, 1, T0 + 10)])).toBe(0)

      await store.applyUpdates([claimed(id, 2, T0 + 1030)])
      await store.applyUpdates([
        { ...retry, attempt: 2, at: T0 + 1040, failedAttempt: failedAttempt(2, T0 + 1040) },
      ])
      expect((await store.get(id))?.history.map((a) => a.attempt)).toEqual([1, 2])
    })

    it('follows a released lease back to queued even though the broker lowers the attempt', async () => {
      const { store, id } = await storeWithTask()
      await store.applyUpdates([claimed(id, 1, T0 + 10)])
      expect(await store.applyUpdates([{ id, status: 'queued', attempt: 0, at: T0 + 20 }])).toBe(1)
      expect(await store.applyUpdates([claimed(id, 1, T0 + 30, 'w2')])).toBe(1)
      expect(await store.get(id)).toMatchObject({ status: 'processing', workerId: 'w2', retryCount: 0 })
    })

    it('dead-letters, revives, and ignores anything from before the revival', async () => {
      const { store, id } = await storeWithTask()
      const dead = {
        id,
        status: 'failed' as const,
        attempt: 3,
        at: T0 + 30,
        failedAttempt: failedAttempt(3, T0 + 30),
      }
      await store.applyUpdates([claimed(id, 3, T0 + 20), dead])
      expect(await store.get(id)).toMatchObject({
        status: 'failed',
        deadLetteredAt: T0 + 30,
        finishedAt: T0 + 30,
      })

      const revive = { id, status: 'queued' as const, attempt: 0, at: T0 + 100, revive: true }
      expect(await store.applyUpdates([revive])).toBe(1)
      const revived = await store.get(id)
      expect(revived).toMatchObject({ status: 'queued', attempt: 0, retryCount: 1 })
      expect(revived?.deadLetteredAt).toBeUndefined()
      expect(revived?.finishedAt).toBeUndefined()

      expect(await store.applyUpdates([claimed(id, 3, T0 + 20), dead])).toBe(0)
      expect(await store.applyUpdates([claimed(id, 1, T0 + 110), completed(id, 1, T0 + 120)])).toBe(2)
      expect(await store.applyUpdates([revive])).toBe(0)
      expect((await store.get(id))?.status).toBe('completed')
    })

    it('revives only a dead-lettered task', async () => {
      const { store, id } = await storeWithTask()
      expect(await store.applyUpdates([{ id, status: 'queued', attempt: 0, at: T0 + 5, revive: true }])).toBe(
        0,
      )
    })

    it('cancels a waiting task', async () => {
      const { store, id } = await storeWithTask()
      expect(await store.applyUpdates([{ id, status: 'cancelled', attempt: 0, at: T0 + 5 }])).toBe(1)
      expect(await store.get(id)).toMatchObject({ status: 'cancelled', finishedAt: T0 + 5 })
    })

    it("touches neither unknown ids nor another queue's tasks", async () => {
      const { store, id } = await storeWithTask()
      const { store: other } = await h.open()
      expect(await other.applyUpdates([claimed(id, 1, T0 + 10), claimed('missing', 1, T0 + 10)])).toBe(0)
      expect((await store.get(id))?.status).toBe('queued')
    })

    it('applies a burst of 200 changes for 100 tasks in one statement', async () => {
      const opened = await h.open()
      const ids = (await opened.store.insertTasks(rows(100))).map((r) => r.id)
      opened.resetStatements()
      const updates = ids.flatMap((id) => [claimed(id, 1, T0 + 10), completed(id, 1, T0 + 20)])
      expect(await opened.store.applyUpdates(updates)).toBe(200)
      expect(opened.statements()).toBe(1)
      expect((await opened.store.list({ status: 'completed' })).total).toBe(100)
    })
  })

  describe('markEnqueued and listUnenqueued', () => {
    it('lists rows the broker never confirmed, oldest first, once past the grace period', async () => {
      const { store } = await h.open()
      const [a, b, c] = [
        newRow({ createdAt: T0 }),
        newRow({ createdAt: T0 + 10 }),
        newRow({ createdAt: T0 + 20 }),
      ]
      await store.insertTasks([c!, a!, b!])
      expect((await store.listUnenqueued(T0 + 15, 10)).map((t) => t.id)).toEqual([a!.id, b!.id])
      expect((await store.listUnenqueued(T0 + 100, 1)).map((t) => t.id)).toEqual([a!.id])

      await store.markEnqueued([a!.id], T0 + 1)
      expect((await store.listUnenqueued(T0 + 100, 10)).map((t) => t.id)).toEqual([b!.id, c!.id])
      expect((await store.get(a!.id))?.enqueuedAt).toBe(T0 + 1)
    })

    it('keeps the first confirmation time, and counts any broker change as a confirmation', async () => {
      const { store } = await h.open()
      const [a, b] = [newRow(), newRow()]
      await store.insertTasks([a!, b!])
      await Promise.all([store.markEnqueued([a!.id], T0 + 1), store.markEnqueued([a!.id], T0 + 2)])
      await store.markEnqueued([a!.id], T0 + 3)
      expect((await store.get(a!.id))?.enqueuedAt).toBe(T0 + 1)

      await store.applyUpdates([{ id: b!.id, status: 'cancelled', attempt: 0, at: T0 + 4 }])
      expect((await store.get(b!.id))?.enqueuedAt).toBe(T0 + 4)
      expect(await store.listUnenqueued(T0 + 100, 10)).toEqual([])
    })
  })
}

/** Store conformance: recording tasks, idempotency keys, group commit and JSON round trips. */
import { describe, expect, it } from 'vitest'
import { DAY, newRow, rows, T0 } from '../fixtures.js'
import type { Harness } from '../harness.js'

export function insertSuite(h: Harness): void {
  describe('insertTasks', () => {
    it('records a task that reads back as submitted', async () => {
      const { store } = await h.open()
      const row = newRow({ priority: 'high', schedule: 'nightly', idempotencyKey: 'k1', maxRetries: 5 })
      const [result] = await store.insertTasks([row])
      expect(result).toEqual({ id: row.id, status: 'queued', createdAt: T0, deduplicated: false })

      const task = await store.get(row.id)
      expect(task).toMatchObject({
        id: row.id,
        queue: store.queue,
        tenantId: 'acme',
        name: 'send-email',
        priority: 'high',
        status: 'queued',
        schedule: 'nightly',
        runAt: T0,
        timeoutMs: 30_000,
        maxRetries: 5,
        attempt: 0,
        retryCount: 0,
        idempotencyKey: 'k1',
        idempotencyExpiresAt: T0 + DAY,
        createdAt: T0,
        updatedAt: T0,
        history: [],
      })
      expect(task?.enqueuedAt).toBeUndefined()
      expect(task?.finishedAt).toBeUndefined()
      expect(JSON.parse(task!.payload)).toEqual(JSON.parse(row.payload))
    })

    it('stores a task due later as pending', async () => {
      const { store } = await h.open()
      const [result] = await store.insertTasks([newRow({ runAt: T0 + 60_000 })])
      expect(result?.status).toBe('pending')
      expect((await store.get(result!.id))?.runAt).toBe(T0 + 60_000)
    })

    it('answers null for an unknown id, another tenant, or another queue', async () => {
      const { store } = await h.open()
      const { store: other } = await h.open()
      const [result] = await store.insertTasks([newRow()])
      expect(await store.get('nope')).toBeNull()
      expect(await store.get(result!.id, 'someone-else')).toBeNull()
      expect(await store.get(result!.id, 'acme')).not.toBeNull()
      expect(await other.get(result!.id)).toBeNull()
    })

    it('round-trips jsonb payloads and results, including a JSON string (an encrypted envelope)', async () => {
      const { store } = await h.open()
      const values = [
        { nested: { list: [1, 2.5, -3e-7, null, true], text: 'naïve ✓ 日本語 "quoted" \\ back' } },
        'v1:k2:base64ciphertext==',
        [],
        9007199254740991,
        null,
      ]
      for (const value of values) {
        const row = newRow({ payload: JSON.stringify(value) })
        await store.insertTasks([row])
        await store.applyUpdates([
          { id: row.id, status: 'completed', attempt: 1, at: T0 + 1, result: row.payload },
        ])
        const task = await store.get(row.id)
        expect(JSON.parse(task!.payload)).toEqual(value)
        expect(JSON.parse(task!.result!)).toEqual(value)
      }
    })

    it('treats inserting a stored id again as a no-op answered with the stored row', async () => {
      const { store } = await h.open()
      const row = newRow()
      await store.insertTasks([row])
      const [again] = await store.insertTasks([{ ...row, payload: '{"changed": true}', createdAt: T0 + 5 }])
      expect(again).toEqual({ id: row.id, status: 'queued', createdAt: T0, deduplicated: false })
      expect(JSON.parse((await store.get(row.id))!.payload)).toEqual(JSON.parse(row.payload))
    })

    it('inserts the new rows of a batch that also holds a stored id (its plain INSERT fails whole)', async () => {
      const opened = await h.open()
      const stored = newRow()
      await opened.store.insertTasks([stored])
      const batch = [newRow(), { ...stored, createdAt: T0 + 5 }, newRow()]
      const before = opened.statements()
      const results = await opened.store.insertTasks(batch)
      expect(results.map((r) => [r.id, r.deduplicated])).toEqual(batch.map((r) => [r.id, false]))
      expect(results[1]!.createdAt).toBe(T0)
      // The plain INSERT, then one ON CONFLICT round and the look-up that settles the stored id.
      expect(opened.statements() - before).toBe(3)
      expect((await opened.store.list()).total).toBe(3)
    })

    it('answers the existing task for a live idempotency key, per tenant and per queue', async () => {
      const { store } = await h.open()
      const { store: otherQueue } = await h.open()
      const first = newRow({ idempotencyKey: 'order-1' })
      await store.insertTasks([first])
      await store.applyUpdates([{ id: first.id, status: 'processing', attempt: 1, at: T0 + 10 }])

      const [dup] = await store.insertTasks([newRow({ idempotencyKey: 'order-1', createdAt: T0 + 1000 })])
      // Its claim confirmed that the broker holds it.
      expect(dup).toEqual({
        id: first.id,
        status: 'processing',
        createdAt: T0,
        deduplicated: true,
        confirmed: true,
      })
      // A match the broker never confirmed says so: the queue hands it over again.
      const orphan = newRow({ idempotencyKey: 'order-2' })
      await store.insertTasks([orphan])
      const [again] = await store.insertTasks([newRow({ idempotencyKey: 'order-2' })])
      expect(again).toMatchObject({ id: orphan.id, deduplicated: true, confirmed: false })
      await store.markEnqueued([orphan.id], T0 + 5)
      const [confirmed] = await store.insertTasks([newRow({ idempotencyKey: 'order-2' })])
      expect(confirmed).toMatchObject({ id: orphan.id, deduplicated: true, confirmed: true })

      const [otherTenant] = await store.insertTasks([
        newRow({ idempotencyKey: 'order-1', tenantId: 'globex' }),
      ])
      expect(otherTenant?.deduplicated).toBe(false)
      const [inOtherQueue] = await otherQueue.insertTasks([newRow({ idempotencyKey: 'order-1' })])
      expect(inOtherQueue?.deduplicated).toBe(false)
      expect((await store.list({ tenantId: 'acme' })).total).toBe(2)
    })

    it('deduplicates a key repeated within one batch to the first row', async () => {
      const { store } = await h.open()
      const batch = [newRow({ idempotencyKey: 'k' }), newRow(), newRow({ idempotencyKey: 'k' })]
      const results = await store.insertTasks(batch)
      expect(results.map((r) => r.deduplicated)).toEqual([false, false, true])
      expect(results[2]?.id).toBe(batch[0]!.id)
      expect((await store.list()).total).toBe(2)
    })

    it('lets a new task take a key once it has expired, releasing it from the old task', async () => {
      const { store } = await h.open()
      const old = newRow({ idempotencyKey: 'k', idempotencyTtlMs: 1000 })
      await store.insertTasks([old])
      const [stillLive] = await store.insertTasks([newRow({ idempotencyKey: 'k', createdAt: T0 + 999 })])
      expect(stillLive).toMatchObject({ id: old.id, deduplicated: true })

      const fresh = newRow({ idempotencyKey: 'k', createdAt: T0 + 1000 })
      const [taken] = await store.insertTasks([fresh])
      expect(taken).toEqual({ id: fresh.id, status: 'queued', createdAt: T0 + 1000, deduplicated: false })
      expect((await store.get(old.id))?.idempotencyKey).toBeUndefined()
      expect((await store.get(fresh.id))?.idempotencyKey).toBe('k')

      const [dup] = await store.insertTasks([newRow({ idempotencyKey: 'k', createdAt: T0 + 1500 })])
      expect(dup).toMatchObject({ id: fresh.id, deduplicated: true })
    })

    it('shares one INSERT among 100 concurrent calls (group commit)', async () => {
      const opened = await h.open()
      const results = await Promise.all(rows(100).map((row) => opened.store.insertTasks([row])))
      expect(results.every(([r]) => r?.deduplicated === false)).toBe(true)
      expect(opened.statements()).toBeLessThanOrEqual(3)
      expect((await opened.store.list()).total).toBe(100)
    })

    it('writes a batch in one statement', async () => {
      const opened = await h.open()
      const results = await opened.store.insertTasks(rows(500))
      expect(results).toHaveLength(500)
      expect(opened.statements()).toBe(1)
    })

    it('fails only the caller whose row is bad when calls share a batch', async () => {
      const { store } = await h.open()
      const outcomes = await Promise.allSettled([
        store.insertTasks([newRow()]),
        store.insertTasks([newRow({ payload: '{not json' })]),
        store.insertTasks([newRow()]),
      ])
      expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
      expect((await store.list()).total).toBe(2)
    })

    it('inserts 10,000 tasks in batches', async () => {
      const { store } = await h.open()
      const all = rows(10_000)
      for (let i = 0; i < all.length; i += 1000) await store.insertTasks(all.slice(i, i + 1000))
      expect((await store.list({ limit: 1 })).total).toBe(10_000)
    })

    it('refuses writes once closed', async () => {
      const { store } = await h.open()
      await store.close()
      await expect(store.insertTasks([newRow()])).rejects.toMatchObject({ code: 'CLOSED' })
    })
  })
}

/** Store conformance: listing, paging, recovery listings and retention. */
import { describe, expect, it } from 'vitest'
import type { Store } from '../../../src/store/store.js'
import { claimed, completed, DAY, newRow, rows, T0 } from '../fixtures.js'
import type { Harness } from '../harness.js'

export function readsSuite(h: Harness): void {
  describe('list', () => {
    /** 12 tasks: tenants acme/globex, names a/b, created one ms apart; some processing or completed. */
    async function seeded() {
      const opened = await h.open()
      const all = Array.from({ length: 12 }, (_, i) =>
        newRow({
          tenantId: i % 2 ? 'globex' : 'acme',
          name: i % 3 ? 'a' : 'b',
          createdAt: T0 + i,
          runAt: T0 + i,
        }),
      )
      await opened.store.insertTasks(all)
      const ids = all.map((r) => r.id)
      await opened.store.applyUpdates([
        claimed(ids[0]!, 1, T0 + 100),
        claimed(ids[1]!, 1, T0 + 100),
        completed(ids[2]!, 1, T0 + 100),
      ])
      return { ...opened, ids }
    }

    it('answers newest first, with the total', async () => {
      const { store, ids } = await seeded()
      const page = await store.list()
      expect(page.total).toBe(12)
      expect(page.items.map((t) => t.id)).toEqual([...ids].reverse())
      expect(page.nextCursor).toBeNull()
    })

    it('filters by tenant, status (one or several) and name', async () => {
      const { store, ids } = await seeded()
      const acme = await store.list({ tenantId: 'acme' })
      expect(acme.total).toBe(6)
      expect(acme.items.every((t) => t.tenantId === 'acme')).toBe(true)
      expect((await store.list({ status: 'processing' })).items.map((t) => t.id).sort()).toEqual(
        [ids[0]!, ids[1]!].sort(),
      )
      expect((await store.list({ status: ['processing', 'completed'] })).total).toBe(3)
      expect((await store.list({ name: 'b' })).total).toBe(4)
      const narrow = await store.list({ tenantId: 'acme', status: 'queued', name: 'a' })
      expect(narrow.items.map((t) => t.id).sort()).toEqual([ids[4]!, ids[8]!, ids[10]!].sort())
      expect(narrow.total).toBe(3)
    })

    it('pages with limit and offset', async () => {
      const { store, ids } = await seeded()
      const page = await store.list({ limit: 5, offset: 5 })
      expect(page.total).toBe(12)
      expect(page.items.map((t) => t.id)).toEqual([...ids].reverse().slice(5, 10))
    })

    it('pages with a cursor, seeing every task once', async () => {
      const { store, ids } = await seeded()
      const seen: string[] = []
      let cursor: string | undefined
      for (let pages = 0; pages < 10; pages += 1) {
        const page = await store.list({ tenantId: 'acme', limit: 4, cursor })
        expect(page.total).toBe(6)
        seen.push(...page.items.map((t) => t.id))
        if (page.nextCursor === null) break
        cursor = page.nextCursor
      }
      expect(seen).toEqual(ids.filter((_, i) => i % 2 === 0).reverse())
    })

    it('merges several statuses into one newest-first order, across pages', async () => {
      const { store, ids } = await seeded()
      const seen: string[] = []
      let cursor: string | undefined
      for (let pages = 0; pages < 10; pages += 1) {
        const page = await store.list({
          status: ['queued', 'completed', 'processing'],
          limit: 3,
          offset: 0,
          cursor,
        })
        seen.push(...page.items.map((t) => t.id))
        if (page.nextCursor === null) break
        cursor = page.nextCursor
      }
      expect(seen).toEqual([...ids].reverse())
      const middle = await store.list({ status: ['processing', 'queued'], limit: 3, offset: 8 })
      expect(middle.items.map((t) => t.id)).toEqual([ids[3]!, ids[1]!, ids[0]!])
      // A status named twice is one filter, and none at all is no filter.
      const twice = await store.list({ status: ['processing', 'processing'] })
      expect(twice.items.map((t) => t.id)).toEqual([ids[1]!, ids[0]!])
      expect(twice.total).toBe(2)
      const none = await store.list({ status: [] })
      expect(none.items.map((t) => t.id)).toEqual([...ids].reverse())
    })

    it('breaks ties on creation time by id', async () => {
      const { store } = await h.open()
      const same = rows(5, { createdAt: T0 })
      await store.insertTasks(same)
      const first = await store.list({ limit: 2 })
      const rest = await store.list({ limit: 10, cursor: first.nextCursor! })
      const order = [...first.items, ...rest.items].map((t) => t.id)
      expect(order).toEqual(
        same
          .map((r) => r.id)
          .sort()
          .reverse(),
      )
    })

    it('rejects a cursor it did not issue and an unknown status', async () => {
      const { store } = await h.open()
      await expect(store.list({ cursor: 'garbage' })).rejects.toMatchObject({ code: 'INVALID_INPUT' })
      // biome-ignore lint/suspicious/noExplicitAny: an invalid status on purpose
      await expect(store.list({ status: 'done' as any })).rejects.toMatchObject({ code: 'INVALID_INPUT' })
    })
  })

  describe('listUnfinished', () => {
    it('pages through every task not yet terminal, in id order', async () => {
      const { store } = await h.open()
      const results = await store.insertTasks(rows(7))
      const ids = results.map((r) => r.id)
      await store.applyUpdates([
        claimed(ids[0]!, 1, T0 + 1),
        completed(ids[1]!, 1, T0 + 1),
        { id: ids[2]!, status: 'cancelled', attempt: 0, at: T0 + 1 },
      ])
      const seen: string[] = []
      let cursor: string | null = null
      do {
        const page: Awaited<ReturnType<Store['listUnfinished']>> = await store.listUnfinished(cursor, 2)
        expect(page.items.length).toBeLessThanOrEqual(2)
        seen.push(...page.items.map((t) => t.id))
        cursor = page.nextCursor
      } while (cursor !== null)
      expect(seen).toEqual([ids[0]!, ...ids.slice(3)].sort())
    })
  })

  describe('purgeFinished', () => {
    it('deletes finished tasks older than the cutoff in batches, and keeps the rest', async () => {
      const opened = await h.open()
      const { store } = opened
      const finished = (await store.insertTasks(rows(25))).map((r) => r.id)
      await store.applyUpdates(finished.map((id) => completed(id, 1, T0 + 10)))
      const [recent, running, waiting] = (await store.insertTasks(rows(3))).map((r) => r.id)
      await store.applyUpdates([completed(recent!, 1, T0 + 5000), claimed(running!, 1, T0 + 10)])

      opened.resetStatements()
      expect(await store.purgeFinished(T0 + 1000, 10)).toBe(25)
      expect(opened.statements()).toBe(3)
      expect(await store.get(finished[0]!)).toBeNull()
      expect((await store.list()).items.map((t) => t.id).sort()).toEqual([recent!, running!, waiting!].sort())
      expect(await store.purgeFinished(T0 + 1000, 10)).toBe(0)
    })

    it('keeps a finished task while its idempotency key is still live', async () => {
      const { store } = await h.open()
      const row = newRow({ idempotencyKey: 'k', idempotencyTtlMs: 7 * DAY })
      await store.insertTasks([row])
      await store.applyUpdates([completed(row.id, 1, T0 + 10)])
      expect(await store.purgeFinished(T0 + 2 * DAY)).toBe(0)
      const [dup] = await store.insertTasks([newRow({ idempotencyKey: 'k', createdAt: T0 + 3 * DAY })])
      expect(dup).toMatchObject({ id: row.id, deduplicated: true })
      expect(await store.purgeFinished(T0 + 8 * DAY)).toBe(1)
    })
  })
}

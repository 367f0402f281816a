/**
 * Store conformance for fencing-token blocks (durable mode): each reservation answers a ceiling
 * above every earlier one of the queue, concurrent ones get disjoint blocks, and a floor raises it.
 */
import { describe, expect, it } from 'vitest'
import { newRow } from '../fixtures.js'
import type { Harness } from '../harness.js'

export function fencesSuite(h: Harness): void {
  describe('fencing-token blocks', () => {
    it('answers a higher ceiling for every reservation, disjoint when concurrent', async () => {
      const { store } = await h.open()
      expect(await store.reserveFences(0, 100)).toBe(100)
      expect(await store.reserveFences(0, 100)).toBe(200)
      const concurrent = await Promise.all([1, 2, 3, 4].map(() => store.reserveFences(0, 100)))
      expect([...concurrent].sort((a, b) => a - b)).toEqual([300, 400, 500, 600])
    })

    it('raises the ceiling to a floor before adding the block, and never lowers it', async () => {
      const { store } = await h.open()
      const floor = 1_765_000_000_000_000 // now × 1000 in 2025: tokens far above 2^32
      expect(await store.reserveFences(floor, 200_000)).toBe(floor + 200_000)
      expect(await store.reserveFences(5, 200_000)).toBe(floor + 400_000)
      expect(Number.isSafeInteger(await store.reserveFences(0, 1))).toBe(true)
    })

    it('keeps one ceiling per queue', async () => {
      const a = await h.open()
      const b = await h.open()
      await a.store.reserveFences(0, 1000)
      expect(await b.store.reserveFences(0, 10)).toBe(10)
    })

    it('reads many rows by id, skipping ids it does not hold', async () => {
      const { store } = await h.open()
      const rows = [newRow(), newRow(), newRow()]
      await store.insertTasks(rows)
      const got = await store.getMany([rows[0]!.id, rows[2]!.id, 'no-such-id'])
      expect(got.map((r) => r.id).sort()).toEqual([rows[0]!.id, rows[2]!.id].sort())
      expect(await store.getMany([])).toEqual([])
    })
  })
}

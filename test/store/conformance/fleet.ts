/** Store conformance for the fleet: lock keys kept with the task, worker heartbeats upserted. */
import { describe, expect, it } from 'vitest'
import { newRow } from '../fixtures.js'
import type { Harness } from '../harness.js'

export function fleetSuite(h: Harness): void {
  describe('fleet', () => {
    it('keeps a task lock key, so recovery restores it', async () => {
      const { store } = await h.open()
      const keyed = newRow({ lockKey: 'customer:42' })
      const plain = newRow()
      await store.insertTasks([keyed, plain])
      expect((await store.get(keyed.id))?.lockKey).toBe('customer:42')
      expect((await store.get(plain.id))?.lockKey).toBeUndefined()
      const unfinished = await store.listUnfinished(null, 10)
      expect(unfinished.items.find((t) => t.id === keyed.id)?.lockKey).toBe('customer:42')
    })

    it('upserts worker heartbeats into the workers table', async () => {
      const { store } = await h.open()
      const id = `w-${store.queue}`
      const beat = {
        id,
        status: 'active' as const,
        hostname: 'host-1',
        pid: 4242,
        concurrency: 8,
        tasksInHand: 3,
        tasksProcessed: 10,
        heartbeatMs: 1000,
        lastHeartbeat: 1_700_000_000_000,
        startedAt: 1_699_999_000_000,
      }
      await store.recordWorkers([beat])
      await store.recordWorkers([
        {
          ...beat,
          status: 'unhealthy',
          tasksInHand: 0,
          tasksProcessed: 12,
          lastHeartbeat: 1_700_000_001_000,
        },
      ])
      const db = h.kysely()
      const row = await db
        .withSchema(h.schema)
        .selectFrom('workers')
        .selectAll()
        .where('id', '=', id)
        .executeTakeFirstOrThrow()
      expect(row).toMatchObject({
        queue: store.queue,
        status: 'unhealthy',
        hostname: 'host-1',
        pid: 4242,
        concurrency: 8,
        tasks_in_hand: 0,
        heartbeat_ms: 1000,
      })
      expect(Number(row.tasks_processed)).toBe(12)
      expect(new Date(row.last_heartbeat).getTime()).toBe(1_700_000_001_000)
      expect(new Date(row.started_at!).getTime()).toBe(1_699_999_000_000)
      await store.recordWorkers([])
    })
  })
}

/**
 * Durable cancel (issue 14 item 3) on the shared servers: a task the broker does not hold yet is
 * cancelled by its stored row, and stays out of the broker; a cancel the store already has is
 * TASK_FINISHED; a cancel in the broker that the store missed is finished by a retry.
 */
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { defineTask } from '../../src/index.js'
import { internals } from '../../src/queue/internal.js'
import { backends } from '../helpers/backends.js'

const note = defineTask({ name: 'note', input: z.object({ text: z.string() }) })
const durable = backends.find((b) => b.label === 'durable')!
const redisBackend = backends.find((b) => b.label === 'redis')!

describe.skipIf(!durable.available)('durable cancel', () => {
  it('cancels a stored task the broker never got by its row, and leaves the broker a cancelled record', async () => {
    const queue = durable.queue()
    await queue.ready()
    const store = queue[internals].store()!
    const broker = queue[internals].broker
    const now = Date.now()
    const id = `unhanded-${now}`
    await store.insertTasks([
      {
        id,
        name: 'note',
        tenantId: 'default',
        payload: queue[internals].encode({ text: 'x' }, 'note'),
        priority: 'normal',
        runAt: now,
        timeoutMs: 30_000,
        maxRetries: 3,
        createdAt: now,
        idempotencyKey: 'k-unhanded',
        idempotencyTtlMs: 86_400_000,
      },
    ])
    expect(await queue.cancel(id)).toMatchObject({ id, status: 'cancelled' })
    expect((await store.get(id))?.status).toBe('cancelled')
    // A repeat of its key finds it cancelled: nothing is handed to the broker.
    expect(await queue.submit(note, { text: 'x' }, { idempotencyKey: 'k-unhanded' })).toMatchObject({
      id,
      deduplicated: true,
      status: 'cancelled',
    })
    // The broker keeps a cancelled record of it, so a restore or reconciliation that read the row
    // before the cancel cannot bring it back (enqueue is idempotent by id).
    expect(await broker.get(id)).toMatchObject({ id, status: 'cancelled' })
    const restored = await broker.enqueue(
      [{ ...(await store.get(id))!, runAt: Date.now(), idempotencyTtlMs: 0 }],
      Date.now(),
    )
    expect(restored[0]?.deduplicated).toBe(true)
    expect(await broker.get(id)).toMatchObject({ status: 'cancelled' })
    expect((await queue.counts()).ready.normal + (await queue.counts()).delayed).toBe(0)
    await expect(queue.cancel(id)).rejects.toMatchObject({ code: 'TASK_FINISHED' })
  })

  it('finishes a cancel the broker made but the store missed when it is retried', async () => {
    const queue = durable.queue()
    const { id } = await queue.submit(note, { text: 'x' }, { delayMs: 60_000 })
    const store = queue[internals].store()!
    // As if the store write of an earlier cancel had failed and its feed entry were lost: a handle
    // without a store (no change feed) cancels it in Redis only.
    const redisOnly = redisBackend.peer(queue)
    await redisOnly.cancel(id)
    expect((await store.get(id))?.status).toBe('pending')
    expect(await queue.cancel(id)).toMatchObject({ id, status: 'cancelled' })
    expect((await store.get(id))?.status).toBe('cancelled')
    await expect(queue.cancel(id)).rejects.toMatchObject({ code: 'TASK_FINISHED' })
  })
})

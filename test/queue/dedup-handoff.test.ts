/**
 * A repeat submit that de-duplicates onto a stored task the broker never received hands that task
 * over at once (issue 14 item 6), with the stored row's own input, not the repeat's; a repeat onto
 * a task the broker holds changes nothing there.
 */
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { defineTask } from '../../src/index.js'
import { internals } from '../../src/queue/internal.js'
import { backends } from '../helpers/backends.js'

const note = defineTask({ name: 'note', input: z.object({ text: z.string() }) })
const durable = backends.find((b) => b.label === 'durable')!

describe.skipIf(!durable.available)('repeat submits and the broker hand-off (durable)', () => {
  it('hands a matched stored task the broker never got to the broker at once', async () => {
    const queue = durable.queue({ recovery: { reconcileGraceMs: 3_600_000 } })
    await queue.ready()
    const store = queue[internals].store()!
    const broker = queue[internals].broker
    const now = Date.now()
    // A submitter that died after its insert: the row exists, the broker never heard of it.
    const [orphan] = await store.insertTasks([
      {
        id: `orphan-${now}`,
        name: 'note',
        tenantId: 'default',
        payload: queue[internals].encode({ text: 'first' }, 'note'),
        priority: 'normal',
        runAt: now,
        timeoutMs: 30_000,
        maxRetries: 3,
        createdAt: now,
        idempotencyKey: 'k-orphan',
        idempotencyTtlMs: 86_400_000,
      },
    ])
    expect(await broker.get(orphan!.id)).toBeNull()

    const again = await queue.submit(note, { text: 'first' }, { idempotencyKey: 'k-orphan' })
    expect(again).toMatchObject({ id: orphan!.id, deduplicated: true })
    const live = await broker.get(orphan!.id)
    expect(live).toMatchObject({ id: orphan!.id, status: 'queued' })
    expect(queue[internals].decode(live!.payload)).toEqual({ text: 'first' })

    // Once more: the broker holds it, so nothing changes and nothing is enqueued twice.
    await queue.submit(note, { text: 'first' }, { idempotencyKey: 'k-orphan' })
    expect((await queue.counts()).ready.normal).toBe(1)
  })
})

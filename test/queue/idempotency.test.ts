/**
 * A repeated idempotency key must come with the same request: the same task name and input
 * (canonical JSON, so key order does not matter) replays the first task; anything else is
 * IDEMPOTENCY_CONFLICT, in every mode.
 */
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { defineTask, TaskloomError } from '../../src/index.js'
import { backends } from '../helpers/backends.js'

const note = defineTask({ name: 'note', input: z.object({ text: z.string(), n: z.number().optional() }) })
const other = defineTask({ name: 'other-note', input: z.object({ text: z.string() }) })

async function conflict(p: Promise<unknown>): Promise<TaskloomError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(TaskloomError)
  expect((err as TaskloomError).code).toBe('IDEMPOTENCY_CONFLICT')
  return err as TaskloomError
}

for (const backend of backends) {
  describe.skipIf(!backend.available)(`idempotency keys with another payload (${backend.label})`, () => {
    it('replays the same task name and input, whatever the key order and options', async () => {
      const queue = backend.queue()
      const a = await queue.submit(note, { text: 'x', n: 1 }, { idempotencyKey: 'k1' })
      const b = await queue.submit(note, { n: 1, text: 'x' }, { idempotencyKey: 'k1', priority: 'high' })
      expect(b).toMatchObject({ id: a.id, deduplicated: true })
    })

    it('refuses another input or another task name under a used key', async () => {
      const queue = backend.queue()
      const a = await queue.submit(note, { text: 'x' }, { idempotencyKey: 'k2' })
      const err = await conflict(queue.submit(note, { text: 'y' }, { idempotencyKey: 'k2' }))
      expect(err.issues).toEqual([{ path: 'options.idempotencyKey', message: expect.stringContaining(a.id) }])
      expect(err.httpStatus).toBe(422)
      await conflict(queue.submit(other, { text: 'x' }, { idempotencyKey: 'k2' }))
      // The key is the tenant's: another tenant's same key is a new task.
      const c = await queue.submit(note, { text: 'y' }, { idempotencyKey: 'k2', tenantId: 'beta' })
      expect(c.deduplicated).toBe(false)
      expect((await queue.get(a.id))?.input).toEqual({ text: 'x' })
    })

    it('submitMany submits the rest and names the entries that conflict', async () => {
      const queue = backend.queue()
      await queue.submit(note, { text: 'x' }, { idempotencyKey: 'k3' })
      const err = await conflict(
        queue.submitMany([
          { task: note, input: { text: 'fresh' }, options: { idempotencyKey: 'k4' } },
          { task: note, input: { text: 'changed' }, options: { idempotencyKey: 'k3' } },
          { task: note, input: { text: 'x' }, options: { idempotencyKey: 'k3' } },
        ]),
      )
      expect(err.issues.map((i) => i.path)).toEqual(['[1].options.idempotencyKey'])
      const again = await queue.submit(note, { text: 'fresh' }, { idempotencyKey: 'k4' })
      expect(again.deduplicated).toBe(true)
    })
  })
}

const durable = backends.find((b) => b.label === 'durable')!
describe.skipIf(!durable.available)('a schedule named by an idempotency key', () => {
  it('answers the same schedule for the same request and refuses a different one', async () => {
    const queue = durable.queue()
    const first = await queue.submit(note, { text: 'x' }, { schedule: '0 * * * *', idempotencyKey: 's1' })
    const again = await queue.submit(note, { text: 'x' }, { schedule: ' 0 * * * * ', idempotencyKey: 's1' })
    expect(again).toMatchObject({ id: first.id, deduplicated: true })
    await conflict(queue.submit(note, { text: 'x' }, { schedule: '5 * * * *', idempotencyKey: 's1' }))
    await conflict(queue.submit(note, { text: 'y' }, { schedule: '0 * * * *', idempotencyKey: 's1' }))
  })
})

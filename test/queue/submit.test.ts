import { describe, expect, it, vi } from 'vitest'
import { z } from 'zod'
import { defineTask, TaskloomError } from '../../src/index.js'
import { backends } from '../helpers/backends.js'

const sendEmail = defineTask({
  name: 'send-email',
  input: z.object({ to: z.email(), subject: z.string().min(1) }),
  defaults: { priority: 'normal', maxRetries: 2, timeoutMs: 5000 },
})

async function rejection(p: Promise<unknown> | (() => unknown)): Promise<TaskloomError> {
  try {
    await (typeof p === 'function' ? p() : p)
  } catch (err) {
    expect(err).toBeInstanceOf(TaskloomError)
    return err as TaskloomError
  }
  throw new Error('expected a rejection')
}

for (const backend of backends) {
  describe.skipIf(!backend.available)(`submit and inspect (${backend.label})`, () => {
    it('submits a task and answers its id, status and creation time', async () => {
      const queue = backend.queue()
      const before = Date.now()
      const task = await queue.submit(sendEmail, { to: 'a@b.co', subject: 'hi' })
      expect(task.status).toBe('queued')
      expect(task.deduplicated).toBe(false)
      expect(task.id).toMatch(/^[0-9a-f-]{36}$/)
      expect(task.createdAt.getTime()).toBeGreaterThanOrEqual(before)
      const info = await queue.get(task.id)
      expect(info).toMatchObject({
        id: task.id,
        name: 'send-email',
        tenantId: 'default',
        status: 'queued',
        priority: 'normal',
        input: { to: 'a@b.co', subject: 'hi' },
        attempts: 0,
        retryCount: 0,
        maxRetries: 2,
        timeoutMs: 5000,
        history: [],
      })
    })

    it('applies submit options over the task defaults', async () => {
      const queue = backend.queue()
      const { id } = await queue.submit(
        sendEmail,
        { to: 'a@b.co', subject: 'hi' },
        { priority: 'critical', maxRetries: 0, timeoutMs: 60_000, tenantId: 'acme' },
      )
      expect(await queue.get(id)).toMatchObject({
        priority: 'critical',
        maxRetries: 0,
        timeoutMs: 60_000,
        tenantId: 'acme',
      })
    })

    it('rejects invalid input naming every bad field, and stores nothing', async () => {
      const queue = backend.queue()
      const err = await rejection(queue.submit(sendEmail, { to: 'not-an-email', subject: '' }))
      expect(err.code).toBe('INVALID_INPUT')
      expect(err.httpStatus).toBe(400)
      expect(err.issues.map((i) => i.path).sort()).toEqual(['input.subject', 'input.to'])
      expect(err.message).toContain('input.to')
      expect((await queue.counts()).ready.normal).toBe(0)
    })

    it('rejects invalid options with a clear error', async () => {
      const queue = backend.queue()
      const input = { to: 'a@b.co', subject: 'hi' }
      const bad = [
        { priority: 'urgent' },
        { delayMs: -1 },
        { maxRetries: 1.5 },
        { timeoutMs: 0 },
        { runAt: new Date('nope') },
        { tenantId: 'a b' },
        { idempotencyKey: '' },
        { colour: 'blue' },
      ]
      for (const options of bad) {
        const err = await rejection(queue.submit(sendEmail, input, options as never))
        expect(err.code, JSON.stringify(options)).toBe('INVALID_OPTIONS')
        expect(err.issues.length).toBeGreaterThan(0)
      }
    })

    it('rejects something that is not a defined task', async () => {
      const queue = backend.queue()
      const err = await rejection(queue.submit({ name: 'x' } as never, {}))
      expect(err.code).toBe('UNKNOWN_TASK')
    })

    it('answers null for an unknown task id', async () => {
      const queue = backend.queue()
      expect(await queue.get('00000000-0000-0000-0000-000000000000')).toBeNull()
    })

    it('returns the existing task for a repeated idempotency key, per tenant', async () => {
      const queue = backend.queue()
      const input = { to: 'a@b.co', subject: 'hi' }
      const first = await queue.submit(sendEmail, input, { idempotencyKey: 'welcome-42', tenantId: 'acme' })
      const again = await queue.submit(sendEmail, input, { idempotencyKey: 'welcome-42', tenantId: 'acme' })
      const other = await queue.submit(sendEmail, input, { idempotencyKey: 'welcome-42', tenantId: 'globex' })
      expect(again).toMatchObject({ id: first.id, deduplicated: true, status: 'queued' })
      expect(again.createdAt.getTime()).toBe(first.createdAt.getTime())
      expect(other.deduplicated).toBe(false)
      expect(other.id).not.toBe(first.id)
      const counts = await queue.counts()
      expect(counts.ready.normal).toBe(2)
    })

    it('deduplicates concurrent submits with the same key to one task', async () => {
      const queue = backend.queue()
      const input = { to: 'a@b.co', subject: 'hi' }
      const results = await Promise.all(
        Array.from({ length: 20 }, () => queue.submit(sendEmail, input, { idempotencyKey: 'k' })),
      )
      expect(new Set(results.map((r) => r.id)).size).toBe(1)
      expect(results.filter((r) => !r.deduplicated)).toHaveLength(1)
    })

    it('lets an idempotency key be reused after its retention', async () => {
      const queue = backend.queue({ idempotencyTtlMs: 50 })
      const input = { to: 'a@b.co', subject: 'hi' }
      const first = await queue.submit(sendEmail, input, { idempotencyKey: 'k' })
      await new Promise((r) => setTimeout(r, 120))
      const second = await queue.submit(sendEmail, input, { idempotencyKey: 'k' })
      expect(second.deduplicated).toBe(false)
      expect(second.id).not.toBe(first.id)
    })

    it('shares one round trip between concurrent submits', async () => {
      const queue = backend.queue()
      const broker = (queue as unknown as { broker: { enqueue: (...a: unknown[]) => unknown } }).broker
      const spy = vi.spyOn(broker, 'enqueue')
      await Promise.all(
        Array.from({ length: 100 }, (_, i) => queue.submit(sendEmail, { to: 'a@b.co', subject: `${i}` })),
      )
      expect(spy.mock.calls.length).toBeLessThanOrEqual(3)
      expect((await queue.counts()).ready.normal).toBe(100)
    })

    it('submits a batch in one round trip, validating every entry first', async () => {
      const queue = backend.queue()
      const broker = (queue as unknown as { broker: { enqueue: (...a: unknown[]) => unknown } }).broker
      const spy = vi.spyOn(broker, 'enqueue')
      const entries = Array.from({ length: 50 }, (_, i) => ({
        task: sendEmail,
        input: { to: 'a@b.co', subject: `n${i}` },
        options: { priority: i % 2 ? ('high' as const) : ('low' as const) },
      }))
      const results = await queue.submitMany(entries)
      expect(results).toHaveLength(50)
      expect(spy).toHaveBeenCalledTimes(1)
      expect((await queue.get(results[7]!.id))?.input).toEqual({ to: 'a@b.co', subject: 'n7' })

      const bad = [...entries.slice(0, 3), { task: sendEmail, input: { to: 'x', subject: 'y' } }]
      const err = await rejection(queue.submitMany(bad))
      expect(err.code).toBe('INVALID_INPUT')
      expect(err.issues[0]?.path).toBe('[3].input.to')
      expect((await queue.counts()).ready.high + (await queue.counts()).ready.low).toBe(50)
    })

    it('holds a delayed task as pending until its time', async () => {
      const queue = backend.queue()
      const input = { to: 'a@b.co', subject: 'hi' }
      const delayed = await queue.submit(sendEmail, input, { delayMs: 60_000 })
      const at = await queue.submit(sendEmail, input, { runAt: new Date(Date.now() + 120_000) })
      expect(delayed.status).toBe('pending')
      expect(at.status).toBe('pending')
      const info = await queue.get(delayed.id)
      expect(info!.runAt.getTime()).toBeGreaterThan(Date.now() + 50_000)
      expect((await queue.counts()).delayed).toBe(2)
    })

    it('cancels queued and pending tasks, and explains why it cannot cancel others', async () => {
      const queue = backend.queue()
      const input = { to: 'a@b.co', subject: 'hi' }
      const queued = await queue.submit(sendEmail, input)
      const pending = await queue.submit(sendEmail, input, { delayMs: 60_000 })
      expect((await queue.cancel(queued.id)).status).toBe('cancelled')
      expect((await queue.cancel(pending.id)).status).toBe('cancelled')
      expect((await queue.get(queued.id))?.completedAt).toBeInstanceOf(Date)
      expect((await queue.counts()).delayed).toBe(0)
      expect((await rejection(queue.cancel(queued.id))).code).toBe('TASK_FINISHED')
      expect((await rejection(queue.cancel('nope'))).code).toBe('NOT_FOUND')
    })

    it('refuses to work after close', async () => {
      const queue = backend.queue()
      await queue.close()
      const err = await rejection(() => queue.submit(sendEmail, { to: 'a@b.co', subject: 'hi' }))
      expect(err.code).toBe('CLOSED')
    })
  })
}

describe('defineTask', () => {
  it('rejects bad names and defaults at definition time', () => {
    expect(() => defineTask({ name: '', input: z.object({}) })).toThrow(TaskloomError)
    expect(() => defineTask({ name: 'x', input: z.object({}), defaults: { maxRetries: -1 } })).toThrow(
      /maxRetries/,
    )
    expect(() => defineTask({ name: 'x', input: {} as never })).toThrow(/zod schema/)
  })
})

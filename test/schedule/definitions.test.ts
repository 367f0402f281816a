/**
 * The task definition registry: workers register on start; a process without the handler code
 * resolves names through the in-memory + Redis cache, which a change invalidates across processes.
 */
import pg from 'pg'
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createWorker, defineTask, TaskloomError } from '../../src/index.js'
import { until } from '../helpers/backends.js'
import { DATABASE_URL } from '../helpers/services.js'
import { SCHED_SCHEMA, schedBackends } from './harness.js'

const sendEmail = defineTask({
  name: 'send-email',
  input: z.object({ to: z.email(), subject: z.string().min(1), retries: z.number().int().optional() }),
  defaults: { priority: 'high', maxRetries: 5, timeoutMs: 60_000 },
})

async function codeOf(p: Promise<unknown>): Promise<TaskloomError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(TaskloomError)
  return err as TaskloomError
}

for (const b of schedBackends) {
  describe.skipIf(!b.available)(`task definitions (${b.label})`, () => {
    it('a worker registers its tasks on start; submitByName validates and applies defaults', async () => {
      const queue = b.queue()
      const api = b.peer ? b.peer(queue) : queue // a process without the handler code
      expect(await api.definitions.get('send-email')).toBeNull()
      const done: unknown[] = []
      const worker = createWorker({ queue, concurrency: 2 })
      worker.handle(sendEmail, async (input) => {
        done.push(input)
        return 'sent'
      })
      await worker.start()
      try {
        // The negative answer above was cached; the registration invalidated it.
        const info = await until(() => api.definitions.get('send-email'), 3000, 'the definition')
        expect(info.defaults).toEqual({ priority: 'high', maxRetries: 5, timeoutMs: 60_000 })
        expect(info.inputSchema).toMatchObject({
          type: 'object',
          required: ['to', 'subject'],
          properties: { to: { type: 'string', format: 'email' } },
        })
        expect((await api.definitions.list()).map((d) => d.name)).toEqual(['send-email'])

        const unknown = await codeOf(api.submitByName('send-mail', { to: 'a@b.co', subject: 'hi' }))
        expect(unknown.code).toBe('UNKNOWN_TASK')
        const bad = await codeOf(api.submitByName('send-email', { to: 'nope', subject: '', retries: 1.5 }))
        expect(bad.code).toBe('INVALID_INPUT')
        expect([...new Set(bad.issues.map((i) => i.path))].sort()).toEqual([
          'input.retries',
          'input.subject',
          'input.to',
        ])

        const r = await api.submitByName('send-email', { to: 'a@b.co', subject: 'hi' })
        const task = await until(
          async () => {
            const t = await api.get(r.id)
            return t?.status === 'completed' ? t : null
          },
          10_000,
          'the task to complete',
        )
        expect(task).toMatchObject({ name: 'send-email', priority: 'high', maxRetries: 5, timeoutMs: 60_000 })
        expect(done).toEqual([{ to: 'a@b.co', subject: 'hi' }])

        // A schedule can name a registered task.
        const s = await api.schedules.upsert({
          id: 'mail',
          cron: '0 9 * * 1',
          task: 'send-email',
          input: { to: 'a@b.co', subject: 'weekly' },
        })
        expect(s.options).toEqual({ priority: 'high', maxRetries: 5, timeoutMs: 60_000 })
      } finally {
        await worker.close({ graceMs: 0 })
      }
    })
  })
}

const durable = schedBackends.find((b) => b.label === 'durable')!

describe.skipIf(!durable.available)('definition cache across processes', () => {
  it('a changed definition reaches the other process at once (pub/sub)', async () => {
    const a = durable.queue()
    const b = durable.peer!(a)
    const v1 = defineTask({
      name: 'resize',
      input: z.object({ w: z.number() }),
      defaults: { priority: 'low' },
    })
    await a.definitions.register(v1)
    const first = await b.definitions.resolve('resize')
    expect(first?.defaults.priority).toBe('low')
    expect(await b.definitions.resolve('resize')).toBe(first) // served from memory
    // Registering the same definition again changes nothing.
    await a.definitions.register(v1)
    expect(await b.definitions.resolve('resize')).toBe(first)

    const v2 = defineTask({
      name: 'resize',
      input: z.object({ w: z.number(), h: z.number() }),
      defaults: { priority: 'critical' },
    })
    await a.definitions.register(v2)
    const changedAt = Date.now()
    const second = await until(
      async () => {
        const d = await b.definitions.resolve('resize')
        return d?.defaults.priority === 'critical' ? d : null
      },
      2000,
      'the new definition',
    )
    expect(Date.now() - changedAt).toBeLessThan(1000)
    expect(second.input.safeParse({ w: 1 }).success).toBe(false)
    expect(second.input.safeParse({ w: 1, h: 2 }).success).toBe(true)
  })

  it('entries expire after the TTL when a change bypasses the registry', async () => {
    const a = durable.queue()
    const b = durable.peer!(a, { definitionCacheTtlMs: 800 })
    await a.definitions.register(
      defineTask({ name: 'ttl', input: z.object({}), defaults: { maxRetries: 1 } }),
    )
    expect((await b.definitions.get('ttl'))?.defaults.maxRetries).toBe(1)
    // Changed behind the cache's back: no message, no version bump.
    const client = new pg.Client({ connectionString: DATABASE_URL })
    await client.connect()
    try {
      await client.query(
        `update ${SCHED_SCHEMA}.task_definitions set defaults = jsonb_set(defaults, '{maxRetries}', '7')
         where queue = $1 and name = 'ttl'`,
        [a.name],
      )
    } finally {
      await client.end()
    }
    expect((await b.definitions.get('ttl'))?.defaults.maxRetries).toBe(1) // still cached
    const changedAt = Date.now()
    await until(async () => (await b.definitions.get('ttl'))?.defaults.maxRetries === 7, 3000, 'expiry')
    expect(Date.now() - changedAt).toBeGreaterThanOrEqual(300)
  })
})

/** REST: `progress` in GET /tasks/{id}, and GET /tasks/{id}/logs (tenant-scoped, paged or tailed). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createWorker, type Worker } from '../../src/index.js'
import { silent } from '../helpers/backends.js'
import { hasPostgres, hasRedis } from '../helpers/services.js'
import { ALL_SCOPES, call, SERVERS, type Stack, sendEmail, startStack } from './harness.js'

const up = (await hasRedis()) && (await hasPostgres())

describe.skipIf(!up)('task progress and logs over REST', () => {
  let stack: Stack
  let worker: Worker
  let key: string
  let otherKey: string
  beforeAll(async () => {
    stack = await startStack({ worker: false })
    worker = createWorker({ queue: stack.queue, logger: silent })
    worker.handle(sendEmail, async (input, ctx) => {
      for (let i = 1; i <= 4; i++) void ctx.log(`sending ${i} to ${input.to}`)
      await ctx.progress({ sent: 4 })
      return 'sent'
    })
    await worker.start()
    key = await stack.key('acme', [...ALL_SCOPES])
    otherKey = await stack.key('beta', [...ALL_SCOPES])
  }, 60_000)
  afterAll(async () => {
    await worker?.close({ graceMs: 0 })
    await stack?.close()
  })

  it.each(SERVERS)('shows progress and log lines through %s', async (server) => {
    const url = stack.url[server]
    const created = await call(url, 'POST', '/tasks', {
      key,
      json: { name: 'send-email', payload: { to: 'a@b.co', subject: 'hi' } },
    })
    const id = created.body.task_id as string
    await stack.queue.waitFor(id, { timeoutMs: 10_000 })
    const task = await call(url, 'GET', `/tasks/${id}`, { key })
    expect(task.body).toMatchObject({ status: 'completed', progress: { sent: 4 } })

    const all = await call(url, 'GET', `/tasks/${id}/logs`, { key })
    expect(all.status).toBe(200)
    expect(all.body).toMatchObject({ task_id: id, total: 4, offset: 0 })
    expect(all.body.lines.map((l: { line: string }) => l.line)).toEqual(
      [1, 2, 3, 4].map((i) => `sending ${i} to a@b.co`),
    )
    expect(all.body.lines[0]).toEqual({
      line: 'sending 1 to a@b.co',
      at: expect.any(String),
      seq: 1,
      attempt_token: expect.any(Number),
    })
    const tail = await call(url, 'GET', `/tasks/${id}/logs?tail=1`, { key })
    expect(tail.body).toMatchObject({ total: 4, offset: 3, lines: [{ line: 'sending 4 to a@b.co' }] })
    const page = await call(url, 'GET', `/tasks/${id}/logs?offset=1&limit=2`, { key })
    expect(page.body.lines.map((l: { seq: number }) => l.seq)).toEqual([2, 3])

    expect((await call(url, 'GET', `/tasks/${id}/logs`, { key: otherKey })).status).toBe(404)
    expect((await call(url, 'GET', `/tasks/${id}/logs?tail=0`, { key })).status).toBe(400)
    expect((await call(url, 'GET', '/tasks/nope/logs', { key })).status).toBe(404)
  })
})

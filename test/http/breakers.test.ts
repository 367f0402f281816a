/** A task a tenant's breaker holds back says why over REST: `deferred_by` and `deferred_until`. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createWorker, defineTask, type Worker } from '../../src/index.js'
import { silent, until } from '../helpers/backends.js'
import { hasPostgres, hasRedis } from '../helpers/services.js'
import { ALL_SCOPES, call, SERVERS, type Stack, startStack } from './harness.js'

const up = (await hasRedis()) && (await hasPostgres())
const gateway = defineTask({
  name: 'call-gateway',
  input: z.object({ fail: z.boolean() }),
  defaults: { maxRetries: 0 },
  breaker: { name: 'gateway', perTenant: true },
})

describe.skipIf(!up)('breaker deferrals over REST', () => {
  let stack: Stack
  let worker: Worker
  beforeAll(async () => {
    stack = await startStack({ worker: false, tasks: [gateway] })
    worker = createWorker({
      queue: stack.queue,
      logger: silent,
      breakers: { gateway: { failureThreshold: 1, resetMs: 120_000 } },
      breakerCacheMs: 0,
    })
    worker.handle(gateway, ({ fail }) => {
      if (fail) throw new Error('gateway refused')
      return 'ok'
    })
    await worker.start()
  }, 60_000)
  afterAll(async () => {
    await worker?.close({ graceMs: 0 })
    await stack?.close()
  })

  it("shows deferred_by and deferred_until on the held task, and null on another tenant's", async () => {
    const a = await stack.key('tenant-a', [...ALL_SCOPES])
    const b = await stack.key('tenant-b', [...ALL_SCOPES])
    const base = stack.url.node
    const submit = async (key: string, fail: boolean) =>
      (await call(base, 'POST', '/tasks', { key, json: { name: 'call-gateway', payload: { fail } } })).body
        .task_id
    const opener = await submit(a, true)
    await until(
      async () => (await call(base, 'GET', `/tasks/${opener}`, { key: a })).body.status === 'failed',
    )
    const held = await submit(a, false)
    const ran = await submit(b, false)
    await until(
      async () => (await call(base, 'GET', `/tasks/${ran}`, { key: b })).body.status === 'completed',
    )
    for (const server of SERVERS) {
      const res = await until(async () => {
        const r = await call(stack.url[server], 'GET', `/tasks/${held}`, { key: a })
        return r.body.deferred_by ? r : null
      })
      expect(res.body).toMatchObject({ status: 'pending', deferred_by: 'gateway@tenant-a', retry_count: 0 })
      expect(Date.parse(res.body.deferred_until)).toBeGreaterThan(Date.now() + 100_000)
      const other = await call(stack.url[server], 'GET', `/tasks/${ran}`, { key: b })
      expect(other.body).toMatchObject({ status: 'completed', deferred_by: null, deferred_until: null })
    }
  })
})

/**
 * One tenant's failures must not hold back another tenant's tasks: breakers are opt-in, can be per
 * tenant, and a task a breaker holds back says so (`deferredBy`, `deferredUntil`).
 */
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { defineTask } from '../../src/index.js'
import { waitForTask } from '../../src/testing.js'
import { backends, trackWorker, until } from '../helpers/backends.js'

const input = z.object({ fail: z.boolean() })

for (const backend of backends) {
  describe.skipIf(!backend.available)(`breakers and tenants (${backend.label})`, () => {
    it("a per-tenant breaker opened by one tenant's failures defers only that tenant's tasks, and says so", async () => {
      const q = backend.queue()
      const call = defineTask({ name: 'call-gateway', input, breaker: { name: 'gateway', perTenant: true } })
      const deferred: string[] = []
      const w = trackWorker({
        queue: q,
        concurrency: 2,
        breakers: { gateway: { failureThreshold: 2, resetMs: 60_000 } },
        breakerCacheMs: 0,
      }).handle(call, ({ fail }) => {
        if (fail) throw new Error('gateway says no')
        return 'ok'
      })
      w.on('task:deferred', ({ breaker }) => deferred.push(breaker))
      await w.start()
      const failing = await q.submitMany(
        [1, 2].map(() => ({ task: call, input: { fail: true }, options: { tenantId: 'a', maxRetries: 0 } })),
      )
      for (const t of failing) expect((await waitForTask(q, t.id)).status).toBe('failed')
      expect(await q.breaker('gateway', { tenantId: 'a' }).state()).toMatchObject({
        name: 'gateway@a',
        state: 'open',
      })
      const held = await q.submit(call, { fail: false }, { tenantId: 'a' })
      const other = await q.submit(call, { fail: false }, { tenantId: 'b' })
      expect(await waitForTask(q, other.id, { timeoutMs: 5000 })).toMatchObject({
        status: 'completed',
        attempts: 1,
      })
      const waiting = await until(async () => {
        const t = await q.get(held.id)
        return t?.deferredBy ? t : null
      })
      expect(waiting).toMatchObject({ status: 'pending', attempts: 0, deferredBy: 'gateway@a' })
      expect(waiting.deferredUntil!.getTime()).toBeGreaterThan(Date.now() + 50_000)
      expect(deferred).toEqual(['gateway@a'])
      expect((await q.breaker('gateway', { tenantId: 'b' }).state()).state).toBe('closed')
      expect((await q.breaker('gateway').state()).state).toBe('closed')
      // A task that ran shows no deferral.
      expect((await q.get(other.id))?.deferredBy).toBeUndefined()
      await w.close()
    })

    it("without an opted-in breaker, one tenant's failures never defer another's tasks of the same name", async () => {
      const q = backend.queue()
      const job = defineTask({ name: 'plain-job', input })
      const deferred: string[] = []
      const w = trackWorker({ queue: q, concurrency: 2, breakerCacheMs: 0 }).handle(job, ({ fail }) => {
        if (fail) throw new Error('tenant a is broken')
        return 'ok'
      })
      w.on('task:deferred', ({ breaker }) => deferred.push(breaker))
      await w.start()
      const failing = await q.submitMany(
        Array.from({ length: 8 }, () => ({
          task: job,
          input: { fail: true },
          options: { tenantId: 'a', maxRetries: 0 },
        })),
      )
      for (const t of failing) expect((await waitForTask(q, t.id)).status).toBe('failed')
      const b = await q.submit(job, { fail: false }, { tenantId: 'b' })
      expect(await waitForTask(q, b.id, { timeoutMs: 5000 })).toMatchObject({
        status: 'completed',
        attempts: 1,
      })
      expect(deferred).toEqual([])
      await w.close()
    })

    it('ctx.breaker(name, { perTenant: true }) guards a call per tenant', async () => {
      const q = backend.queue()
      const job = defineTask({ name: 'uses-smtp', input })
      const w = trackWorker({
        queue: q,
        concurrency: 1,
        breakers: { smtp: { failureThreshold: 1, resetMs: 60_000 } },
        breakerCacheMs: 0,
      }).handle(job, ({ fail }, ctx) =>
        ctx.breaker('smtp', { perTenant: true }).run(() => {
          if (fail) throw new Error('smtp down for this tenant')
          return 'sent'
        }),
      )
      await w.start()
      const bad = await q.submit(job, { fail: true }, { tenantId: 'a', maxRetries: 0 })
      await waitForTask(q, bad.id)
      expect((await q.breaker('smtp', { tenantId: 'a' }).state()).state).toBe('open')
      const held = await q.submit(job, { fail: false }, { tenantId: 'a' })
      const fine = await q.submit(job, { fail: false }, { tenantId: 'b' })
      expect(await waitForTask(q, fine.id, { timeoutMs: 5000 })).toMatchObject({ status: 'completed' })
      const waiting = await until(async () => {
        const t = await q.get(held.id)
        return t?.deferredBy ? t : null
      })
      expect(waiting).toMatchObject({ status: 'pending', deferredBy: 'smtp@a' })
      await w.close()
    })
  })
}

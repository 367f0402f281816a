/**
 * ctx.progress and ctx.log end to end (issue 17) on every backend (in-process, Redis, durable):
 * shown by get and logs, validated, bounded, fenced, and kept in PostgreSQL in durable mode.
 */
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { defineTask, LeaseLostError, type TaskContext } from '../../src/index.js'
import { internals } from '../../src/queue/internal.js'
import { backends, trackWorker, until } from '../helpers/backends.js'

const job = defineTask({ name: 'job', input: z.object({ lines: z.number() }) })

for (const backend of backends) {
  describe.skipIf(!backend.available)(`task progress and logs (${backend.label})`, () => {
    it('shows the latest progress with the task and its log lines in order', async () => {
      const queue = backend.queue()
      const worker = trackWorker({ queue })
      worker.handle(job, async ({ lines }, ctx) => {
        await ctx.progress(10)
        for (let i = 1; i <= lines; i++) void ctx.log(`line ${i}`)
        await ctx.progress({ step: 'done', of: lines })
        return 'ok'
      })
      await worker.start()
      const { id } = await queue.submit(job, { lines: 3 })
      const done = await queue.waitFor(id, { timeoutMs: 10_000 })
      expect(done.progress).toEqual({ step: 'done', of: 3 })
      const logs = await queue.logs(id)
      expect(logs.total).toBe(3)
      expect(logs.lines.map((l) => l.line)).toEqual(['line 1', 'line 2', 'line 3'])
      expect(logs.lines.map((l) => l.seq)).toEqual([1, 2, 3])
      expect(logs.lines[0]!.at).toBeInstanceOf(Date)
      expect((await queue.logs(id, { tail: 2 })).lines.map((l) => l.line)).toEqual(['line 2', 'line 3'])
      expect((await queue.logs(id, { offset: 1, limit: 1 })).lines.map((l) => l.line)).toEqual(['line 2'])
      await expect(queue.logs(id, { tenantId: 'someone-else' })).rejects.toMatchObject({ code: 'NOT_FOUND' })
      await worker.close()
    })

    it('keeps the last maxLogLines lines and cuts lines past maxLogLineLength', async () => {
      const queue = backend.queue({ maxLogLines: 5, maxLogLineLength: 20 })
      const worker = trackWorker({ queue })
      worker.handle(job, async ({ lines }, ctx) => {
        for (let i = 1; i <= lines; i++) void ctx.log(`line ${i}`)
        await ctx.log(`${'x'.repeat(50)}\u0000`)
      })
      await worker.start()
      const { id } = await queue.submit(job, { lines: 12 })
      await queue.waitFor(id, { timeoutMs: 10_000 })
      const logs = await until(async () => {
        const page = await queue.logs(id)
        return page.total === 5 ? page : undefined
      })
      expect(logs.lines.map((l) => l.line)).toEqual([
        'line 9',
        'line 10',
        'line 11',
        'line 12',
        `${'x'.repeat(19)}…`,
      ])
      await worker.close()
    })

    it('refuses bad progress values with INVALID_INPUT', async () => {
      const queue = backend.queue()
      const worker = trackWorker({ queue })
      const errors: unknown[] = []
      worker.handle(job, async (_input, ctx) => {
        const values: unknown[] = [Number.NaN, -1, 100.5, Number.POSITIVE_INFINITY, 'half', [1], new Date()]
        values.push({ blob: 'x'.repeat(5000) })
        for (const value of values) {
          try {
            await ctx.progress(value as number)
          } catch (err) {
            errors.push(err)
          }
        }
        try {
          await ctx.log(42 as unknown as string)
        } catch (err) {
          errors.push(err)
        }
        await ctx.progress(100)
      })
      await worker.start()
      const { id } = await queue.submit(job, { lines: 0 })
      const done = await queue.waitFor(id, { timeoutMs: 10_000 })
      expect(done.status).toBe('completed')
      expect(done.progress).toBe(100)
      expect(errors).toHaveLength(9)
      for (const err of errors) expect(err).toMatchObject({ code: 'INVALID_INPUT' })
      expect((errors[0] as Error).message).toMatch(/0 to 100/)
      expect((errors[7] as Error).message).toMatch(/bytes/)
      await worker.close()
    })

    it('refuses output from an attempt that lost its lease, like a late completion', async () => {
      const queue = backend.queue()
      await queue.ready()
      const broker = queue[internals].broker
      const { id } = await queue.submit(job, { lines: 0 })
      const now = Date.now()
      const [first] = (await broker.claim('w1', 1, 50, now)).tasks
      // The lease lapses; the next claim takes the task again with a higher token.
      const [second] = (await broker.claim('w2', 1, 30_000, now + 100)).tasks
      expect(second!.token).toBeGreaterThan(first!.token)
      const outcomes = await broker.report(
        [
          { id, token: first!.token, progress: '90' },
          { id, token: first!.token, log: 'late' },
          { id, token: second!.token, progress: '20' },
          { id, token: second!.token, log: 'current' },
        ],
        1000,
        now + 101,
      )
      expect(outcomes).toEqual(['stale', 'stale', 'ok', 'ok'])
      await broker.complete([{ id, token: second!.token, result: '1' }], now + 102)
      const done = await queue.waitFor(id, { timeoutMs: 10_000 })
      expect(done.progress).toBe(20)
      expect((await queue.logs(id)).lines.map((l) => [l.token, l.line])).toEqual([[second!.token, 'current']])
    })

    it('rejects ctx.progress with LeaseLostError once the worker lost the lease', async () => {
      const queue = backend.queue()
      const worker = trackWorker({ queue, leaseMs: 200 })
      let ctxSeen: TaskContext | undefined
      let release = () => {}
      worker.handle(job, async (_input, ctx) => {
        ctxSeen = ctx
        await new Promise<void>((r) => (release = r))
      })
      await worker.start()
      const { id } = await queue.submit(job, { lines: 0 })
      await until(() => ctxSeen)
      // Another claimant takes the task over, as after an expired lease: the first token is stale.
      const broker = queue[internals].broker
      // (Claimed at a time past every lease now held.)
      const [taken] = (await broker.claim('thief', 1, 30_000, Date.now() + 60_000)).tasks
      expect(taken?.id).toBe(id)
      await expect(ctxSeen!.progress(50)).rejects.toBeInstanceOf(LeaseLostError)
      await expect(ctxSeen!.log('too late')).rejects.toBeInstanceOf(LeaseLostError)
      release()
      expect((await queue.get(id))?.progress).toBeUndefined()
      await worker.close({ graceMs: 0 })
    })

    if (backend.label === 'memory') {
      it('keeps progress and log lines in the embedded store (in-process broker + PGlite)', async () => {
        const queue = backend.queue({ postgres: undefined })
        const worker = trackWorker({ queue })
        worker.handle(job, async ({ lines }, ctx) => {
          for (let i = 1; i <= lines; i++) void ctx.log(`line ${i}`)
          await ctx.progress(75)
        })
        await worker.start()
        const { id } = await queue.submit(job, { lines: 2 })
        await queue.waitFor(id, { timeoutMs: 10_000 })
        const store = queue[internals].store()!
        const lines = await until(async () => {
          const stored = await store.logs(id)
          return stored.length === 2 ? stored : undefined
        })
        expect(lines.map((l) => l.line)).toEqual(['line 1', 'line 2'])
        expect((await store.get(id))?.progress).toBe('75')
        await worker.close()
      })
    }

    if (backend.label === 'durable') {
      it('keeps progress and log lines in PostgreSQL, written through the change feed', async () => {
        const queue = backend.queue()
        const worker = trackWorker({ queue })
        worker.handle(job, async ({ lines }, ctx) => {
          for (let i = 1; i <= lines; i++) void ctx.log(`line ${i}`)
          await ctx.progress({ rows: lines })
        })
        await worker.start()
        const { id } = await queue.submit(job, { lines: 4 })
        await queue.waitFor(id, { timeoutMs: 10_000 })
        const store = queue[internals].store()!
        const row = await until(async () => {
          const stored = await store.get(id)
          return stored?.progress !== undefined ? stored : undefined
        })
        expect(JSON.parse(row.progress!)).toEqual({ rows: 4 })
        const lines = await until(async () => {
          const stored = await store.logs(id)
          return stored.length === 4 ? stored : undefined
        })
        expect(lines.map((l) => l.line)).toEqual(['line 1', 'line 2', 'line 3', 'line 4'])
        await worker.close()
      })
    }
  })
}

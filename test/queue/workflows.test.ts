/**
 * Task dependencies and flows through the public API (issue 17), on every backend: the in-process
 * broker, Redis, and durable mode (Redis + PostgreSQL).
 */
import { describe, expect, expectTypeOf, it } from 'vitest'
import { z } from 'zod'
import { defineTask, type TaskloomError } from '../../src/index.js'
import { waitForTask } from '../../src/testing.js'
import { backends, trackWorker, until } from '../helpers/backends.js'

const num = defineTask({ name: 'num', input: z.object({ n: z.number() }), output: z.number() })
const sum = defineTask({
  name: 'sum',
  input: z.object({}),
  output: z.object({ total: z.number(), seen: z.number() }),
})
const flaky = defineTask({ name: 'flaky', input: z.object({}), defaults: { maxRetries: 0 } })
const join = defineTask({ name: 'join', input: z.object({}) })

/** The error a call rejected with (the test fails if it resolved). */
async function rejection(call: Promise<unknown>): Promise<TaskloomError> {
  const outcome = await call.then(
    () => undefined,
    (e: unknown) => e as TaskloomError,
  )
  if (!outcome) throw new Error('expected the call to reject')
  return outcome
}

for (const backend of backends) {
  describe.skipIf(!backend.available)(`workflows (${backend.label})`, () => {
    /** A worker running num (returns n), sum (adds its dependencies' results) and join (records deps). */
    async function start(queue: ReturnType<typeof backend.queue>, runs: string[] = []) {
      const worker = trackWorker({ queue, concurrency: 20, pollIntervalMs: 20 })
      const seen: Record<string, Record<string, { status: string; result: unknown }>> = {}
      worker.handle(num, ({ n }, ctx) => {
        runs.push(ctx.taskId)
        return n
      })
      worker.handle(sum, async (_input, ctx) => {
        runs.push(ctx.taskId)
        const deps = await ctx.dependencies()
        let total = 0
        for (const id of Object.keys(deps)) total += await ctx.resultOf(num, id)
        return { total, seen: Object.keys(deps).length }
      })
      worker.handle(flaky, () => {
        throw new Error('flaky broke')
      })
      worker.handle(join, async (_input, ctx) => {
        runs.push(ctx.taskId)
        seen[ctx.taskId] = await ctx.dependencies()
        return 'joined'
      })
      await worker.start()
      return { worker, seen }
    }

    it('runs a chain in order, each step after the one before', async () => {
      const queue = backend.queue()
      const runs: string[] = []
      const { worker } = await start(queue, runs)
      const { rootId, ids } = await queue.chain([
        { task: num, input: { n: 1 } },
        { task: num, input: { n: 2 } },
        { task: sum, input: {} },
      ])
      const done = await waitForTask(queue, rootId!)
      expect(done.result).toEqual({ total: 2, seen: 1 })
      expect(runs).toEqual([ids['0'], ids['1'], ids['2']])
      await worker.close()
    })

    it('fans out to 1,000 children and in to one parent that sees every result', async () => {
      const queue = backend.queue()
      const runs: string[] = []
      const { worker } = await start(queue, runs)
      const children = Array.from({ length: 1000 }, (_, i) => ({ task: num, input: { n: i } }))
      const { rootId } = await queue.flow({ task: sum, input: {}, children })
      const done = await waitForTask(queue, rootId!, { timeoutMs: 60_000 })
      expect(done.result).toEqual({ total: (999 * 1000) / 2, seen: 1000 })
      expect(runs.at(-1)).toBe(rootId)
      expect(new Set(runs).size).toBe(1001)
      await worker.close()
    }, 90_000)

    it('runs a diamond DAG: the join after both branches, each once', async () => {
      const queue = backend.queue()
      const runs: string[] = []
      const { worker, seen } = await start(queue, runs)
      const { ids, flowId } = await queue.flow({
        nodes: [
          { key: 'top', task: num, input: { n: 1 } },
          { key: 'left', task: num, input: { n: 2 }, dependsOn: ['top'] },
          { key: 'right', task: num, input: { n: 3 }, dependsOn: ['top'] },
          { key: 'join', task: join, input: {}, dependsOn: ['left', 'right'] },
        ],
      })
      await waitForTask(queue, ids.join!)
      expect(runs[0]).toBe(ids.top)
      expect(runs.at(-1)).toBe(ids.join)
      expect(runs).toHaveLength(4)
      expect(Object.keys(seen[ids.join!]!).sort()).toEqual([ids.left, ids.right].sort())
      expect(seen[ids.join!]![ids.left!]).toMatchObject({ status: 'completed', result: 2 })
      const status = await queue.flowStatus(flowId)
      expect(status).toMatchObject({ status: 'completed', flowId })
      expect(status!.nodes.find((n) => n.key === 'join')).toMatchObject({
        dependsOn: ['left', 'right'],
        status: 'completed',
      })
      await worker.close()
    })

    it("fails dependents recursively under 'fail', naming the cause", async () => {
      const queue = backend.queue()
      const runs: string[] = []
      const { worker } = await start(queue, runs)
      const { ids } = await queue.flow({
        nodes: [
          { key: 'bad', task: flaky, input: {} },
          { key: 'mid', task: num, input: { n: 1 }, dependsOn: ['bad'] },
          { key: 'top', task: join, input: {}, dependsOn: ['mid'] },
        ],
      })
      const top = await waitForTask(queue, ids.top!)
      expect(top.status).toBe('failed')
      expect(top.error?.name).toBe('DependencyFailedError')
      expect(top.error?.message).toContain(ids.mid)
      const mid = await queue.get(ids.mid!)
      expect(mid?.error?.message).toContain(ids.bad)
      expect(mid?.error?.message).toContain('flaky broke')
      expect(runs).toEqual([])
      await worker.close()
    })

    it("runs a dependent under 'ignore' (it sees the failure) and 'remove' (it does not)", async () => {
      const queue = backend.queue()
      const { worker, seen } = await start(queue)
      const { ids } = await queue.flow({
        nodes: [
          { key: 'bad', task: flaky, input: {} },
          { key: 'good', task: num, input: { n: 5 } },
          {
            key: 'ignoring',
            task: join,
            input: {},
            dependsOn: [{ key: 'bad', onFailure: 'ignore' }, 'good'],
          },
          {
            key: 'removing',
            task: join,
            input: {},
            dependsOn: [{ key: 'bad', onFailure: 'remove' }, 'good'],
          },
        ],
      })
      expect((await waitForTask(queue, ids.ignoring!)).status).toBe('completed')
      expect((await waitForTask(queue, ids.removing!)).status).toBe('completed')
      expect(seen[ids.ignoring!]![ids.bad!]).toMatchObject({
        status: 'failed',
        error: { message: 'flaky broke' },
      })
      expect(Object.keys(seen[ids.removing!]!)).toEqual([ids.good])
      await worker.close()
    })

    it('cancels the pending tasks that depend on a cancelled task', async () => {
      const queue = backend.queue()
      const a = await queue.submit(num, { n: 1 })
      const b = await queue.submit(num, { n: 2 }, { dependsOn: [a.id] })
      const c = await queue.submit(join, {}, { dependsOn: [b.id] })
      const d = await queue.submit(join, {}, { dependsOn: [{ id: a.id, onFailure: 'ignore' }] })
      expect(b.status).toBe('pending')
      await queue.cancel(a.id)
      expect((await queue.get(b.id))?.status).toBe('cancelled')
      expect((await queue.get(c.id))?.status).toBe('cancelled')
      expect((await queue.get(d.id))?.status).toBe('queued')
    })

    it('tells waitFor and queue events when a dependency ends its dependents', async () => {
      const queue = backend.queue()
      const a = await queue.submit(num, { n: 1 })
      const b = await queue.submit(num, { n: 2 }, { dependsOn: [a.id] })
      const seen: string[] = []
      queue.events.on('cancelled', (e) => {
        seen.push(e.taskId)
      })
      const waiting = queue.waitFor(b.id, { timeoutMs: 5000 })
      await new Promise((resolve) => setTimeout(resolve, 100))
      await queue.cancel(a.id)
      expect((await waiting).status).toBe('cancelled')
      await until(() => seen.includes(b.id))
      expect(seen).toEqual([a.id, b.id])
    })

    it('shows dependsOn, dependents and waitingFor on get', async () => {
      const queue = backend.queue()
      const a = await queue.submit(num, { n: 1 })
      const b = await queue.submit(num, { n: 2 }, { dependsOn: [{ id: a.id, onFailure: 'remove' }] })
      expect(await queue.get(b.id)).toMatchObject({
        status: 'pending',
        dependsOn: [{ id: a.id, queue: queue.name, onFailure: 'remove' }],
        waitingFor: [{ id: a.id, queue: queue.name }],
      })
      expect((await queue.get(a.id))?.dependents).toEqual([{ id: b.id, queue: queue.name }])
    })

    it('rejects cycles and unknown keys with INVALID_INPUT, storing nothing', async () => {
      const queue = backend.queue()
      const cycle = await rejection(
        queue.flow({
          nodes: [
            { key: 'a', task: num, input: { n: 1 }, dependsOn: ['c'] },
            { key: 'b', task: num, input: { n: 1 }, dependsOn: ['a'] },
            { key: 'c', task: num, input: { n: 1 }, dependsOn: ['b'] },
          ],
        }),
      )
      expect(cycle.code).toBe('INVALID_INPUT')
      expect(cycle.message).toContain('cycle')
      const unknown = await rejection(
        queue.flow({ nodes: [{ key: 'a', task: num, input: { n: 1 }, dependsOn: ['nope'] }] }),
      )
      expect(unknown.code).toBe('INVALID_INPUT')
      const badInput = await rejection(
        queue.flow({ task: join, input: {}, children: [{ task: num, input: { n: 'x' } as never }] }),
      )
      expect(badInput.code).toBe('INVALID_INPUT')
      const counts = await queue.counts()
      expect(counts.ready.normal + counts.delayed).toBe(0)
    })

    it("rejects another tenant's task as a dependency with NOT_FOUND", async () => {
      const queue = backend.queue()
      const theirs = await queue.submit(num, { n: 1 }, { tenantId: 'tenant-b' })
      const err = await rejection(
        queue.submit(num, { n: 1 }, { tenantId: 'tenant-a', dependsOn: [theirs.id] }),
      )
      expect(err.code).toBe('NOT_FOUND')
      const unknown = await rejection(queue.submit(num, { n: 1 }, { dependsOn: ['no-such-task'] }))
      expect(unknown.code).toBe('NOT_FOUND')
      expect((await queue.counts()).ready.normal).toBe(1)
    })

    it('answers a repeated flow idempotency key with the first flow', async () => {
      const queue = backend.queue()
      const spec = { task: join, input: {}, children: [{ task: num, input: { n: 1 } }] }
      const first = await queue.flow(spec, { idempotencyKey: 'nightly-1' })
      const again = await queue.flow(spec, { idempotencyKey: 'nightly-1' })
      expect(first.deduplicated).toBe(false)
      expect(again).toEqual({ ...first, deduplicated: true })
      expect((await queue.counts()).ready.normal).toBe(1)
    })

    it('enforces maxFlowNodes and maxFlowDepth', async () => {
      const queue = backend.queue({ maxFlowNodes: 3, maxFlowDepth: 2 })
      const wide = await rejection(
        queue.flow({
          task: join,
          input: {},
          children: Array.from({ length: 3 }, () => ({ task: num, input: { n: 1 } })),
        }),
      )
      expect(wide.code).toBe('INVALID_INPUT')
      const deep = await rejection(queue.chain([0, 1, 2].map((n) => ({ task: num, input: { n } }))))
      expect(deep.code).toBe('INVALID_INPUT')
    })

    it('fails an attempt whose result does not match the output schema, without retries', async () => {
      const queue = backend.queue()
      const strict = defineTask({
        name: 'strict',
        input: z.object({}),
        output: z.object({ ok: z.boolean() }),
      })
      const worker = trackWorker({ queue, pollIntervalMs: 20 })
      worker.handle(strict, () => ({ ok: 'yes' }) as never)
      await worker.start()
      const { id } = await queue.submit(strict, {}, { maxRetries: 3 })
      const done = await waitForTask(queue, id)
      expect(done.status).toBe('failed')
      expect(done.attempts).toBe(1)
      expect(done.error?.message).toContain('output schema')
      await worker.close()
    })

    it('releases a dependent exactly once when its dependencies complete on two workers at once', async () => {
      const queue = backend.queue()
      const peer = backend.peer(queue)
      const runs: string[] = []
      let started = 0
      const barrier = defineTask({ name: 'barrier', input: z.object({}) })
      const workers = [
        trackWorker({ queue, pollIntervalMs: 10 }),
        trackWorker({ queue: peer, pollIntervalMs: 10 }),
      ]
      for (const w of workers) {
        w.handle(barrier, async () => {
          started++
          await until(() => started >= 2)
        })
        w.handle(join, (_i, ctx) => void runs.push(ctx.taskId))
      }
      for (let round = 0; round < 5; round++) {
        const a = await queue.submit(barrier, {})
        const b = await queue.submit(barrier, {})
        await queue.submit(join, {}, { dependsOn: [a.id, b.id] })
      }
      await Promise.all(workers.map((w) => w.start()))
      await until(() => runs.length >= 5, 20_000)
      await new Promise((r) => setTimeout(r, 200))
      expect(runs).toHaveLength(5)
      expect(new Set(runs).size).toBe(5)
      await Promise.all(workers.map((w) => w.close()))
    })

    it('types ctx.resultOf by the task’s output schema', () => {
      expectTypeOf<ReturnType<typeof start>>().toBeObject()
      const worker = trackWorker({ queue: backend.queue() })
      worker.handle(join, async (_input, ctx) => {
        expectTypeOf(await ctx.resultOf(num, 'x')).toEqualTypeOf<number>()
        expectTypeOf(await ctx.resultOf(sum, 'x')).toEqualTypeOf<{ total: number; seen: number }>()
        expectTypeOf(await ctx.resultOf(join, 'x')).toEqualTypeOf<unknown>()
      })
      // @ts-expect-error: the handler of a task with an output schema must return that type
      worker.handle(num, () => 'not a number')
    })
  })
}

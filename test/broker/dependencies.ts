/**
 * The dependency part of the Broker conformance suite (src/task/dependency-model.ts): every broker
 * passes it unchanged, with explicit `now` values.
 */
import { randomUUID } from 'node:crypto'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Broker, ClaimedTask, NewTask } from '../../src/broker/broker.js'
import { TaskloomError } from '../../src/errors.js'
import type { FailurePolicy } from '../../src/task/dependency-model.js'
import type { ErrorInfo } from '../../src/task/model.js'
import { uniqueName } from '../helpers/services.js'

const t0 = 1_000_000
const LEASE = 30_000
const BOOM: ErrorInfo = { name: 'Error', message: 'boom' }

export function dependencyConformance(
  label: string,
  make: (queueName: string) => Promise<Broker> | Broker,
  cleanup?: (broker: Broker) => Promise<void>,
): void {
  describe(`${label}: dependencies`, () => {
    let broker: Broker

    beforeEach(async () => {
      broker = await make(uniqueName('deps'))
    })

    afterEach(async () => {
      await (cleanup ? cleanup(broker) : broker.close())
    })

    function task(
      dependsOn: (string | [string, FailurePolicy])[] = [],
      overrides: Partial<NewTask> = {},
    ): NewTask {
      return {
        id: randomUUID(),
        name: 'step',
        tenantId: 'tenant-a',
        payload: '{}',
        priority: 'normal',
        runAt: t0,
        timeoutMs: 60_000,
        maxRetries: 0,
        createdAt: t0,
        idempotencyTtlMs: 0,
        dependsOn: dependsOn.map((d) => {
          const [id, onFailure] = typeof d === 'string' ? [d, 'fail' as const] : d
          return { id, queue: broker.queueName, onFailure }
        }),
        ...overrides,
      }
    }

    async function add(...tasks: NewTask[]): Promise<string[]> {
      const { results } = await broker.enqueueFlow(tasks, t0)
      return results.map((r) => r.id)
    }

    async function claimAll(now = t0, max = 1000): Promise<ClaimedTask[]> {
      return (await broker.claim('w', max, LEASE, now)).tasks
    }

    async function runAll(now = t0): Promise<string[]> {
      const claimed = await claimAll(now)
      await broker.complete(
        claimed.map((c) => ({ id: c.id, token: c.token, result: `"${c.id}"` })),
        now,
      )
      return claimed.map((c) => c.id)
    }

    async function failAll(now = t0): Promise<string[]> {
      const claimed = await claimAll(now)
      await broker.fail(
        claimed.map((c) => ({ id: c.id, token: c.token, error: BOOM, outcome: 'error', retryAt: null })),
        now,
      )
      return claimed.map((c) => c.id)
    }

    async function status(id: string) {
      return (await broker.get(id))?.status
    }

    it('runs a chain one task after the other', async () => {
      const a = task()
      const b = task([a.id])
      const c = task([b.id])
      expect((await broker.enqueueFlow([a, b, c], t0)).results.map((r) => r.status)).toEqual([
        'queued',
        'pending',
        'pending',
      ])
      expect(await runAll()).toEqual([a.id])
      expect(await runAll()).toEqual([b.id])
      expect(await status(c.id)).toBe('queued')
      expect(await runAll()).toEqual([c.id])
      expect(await runAll()).toEqual([])
    })

    it('releases a parent of 1,000 children once, after the last one completes', async () => {
      const children = Array.from({ length: 1000 }, () => task())
      const parent = task(children.map((c) => c.id))
      await add(...children, parent)
      const claimed = await claimAll(t0, 1000)
      expect(claimed).toHaveLength(1000)
      expect(claimed.map((c) => c.id)).not.toContain(parent.id)
      const last = claimed.pop()!
      await broker.complete(
        claimed.map((c) => ({ id: c.id, token: c.token, result: '1' })),
        t0,
      )
      expect(await status(parent.id)).toBe('pending')
      expect((await broker.get(parent.id))?.waitingFor).toEqual([{ id: last.id, queue: broker.queueName }])
      await broker.complete([{ id: last.id, token: last.token, result: '1' }], t0)
      expect(await runAll()).toEqual([parent.id])
    })

    it('runs a diamond: the join waits for both branches', async () => {
      const top = task()
      const left = task([top.id])
      const right = task([top.id])
      const join = task([left.id, right.id])
      await add(top, left, right, join)
      expect(await runAll()).toEqual([top.id])
      expect((await runAll()).sort()).toEqual([left.id, right.id].sort())
      expect(await runAll()).toEqual([join.id])
    })

    it('releases a dependent exactly once when two dependencies complete at the same instant', async () => {
      const a = task()
      const b = task()
      const join = task([a.id, b.id])
      await add(a, b, join)
      const [ca] = (await broker.claim('w1', 1, LEASE, t0)).tasks
      const [cb] = (await broker.claim('w2', 1, LEASE, t0)).tasks
      await Promise.all([
        broker.complete([{ id: ca!.id, token: ca!.token, result: '1' }], t0),
        broker.complete([{ id: cb!.id, token: cb!.token, result: '2' }], t0),
      ])
      expect(await runAll()).toEqual([join.id])
      expect(await runAll()).toEqual([])
    })

    it("fails dependents recursively under 'fail', with an error naming the cause", async () => {
      const a = task()
      const b = task([a.id])
      const c = task([b.id])
      await add(a, b, c)
      expect(await failAll()).toEqual([a.id])
      const rb = await broker.get(b.id)
      expect(rb).toMatchObject({ status: 'failed', error: { name: 'DependencyFailedError' } })
      expect(rb?.error?.message).toContain(a.id)
      expect(rb?.error?.message).toContain('boom')
      const rc = await broker.get(c.id)
      expect(rc?.status).toBe('failed')
      expect(rc?.error?.message).toContain(b.id)
      expect(await runAll()).toEqual([])
    })

    it.each(['ignore', 'remove'] as const)("runs a dependent anyway under '%s'", async (policy) => {
      const a = task()
      const ok = task()
      const b = task([[a.id, policy], ok.id])
      await add(a, ok, b)
      const claimed = await claimAll()
      const failing = claimed.find((c) => c.id === a.id)!
      const fine = claimed.find((c) => c.id === ok.id)!
      await broker.fail(
        [{ id: a.id, token: failing.token, error: BOOM, outcome: 'error', retryAt: null }],
        t0,
      )
      expect(await status(b.id)).toBe('pending')
      await broker.complete([{ id: ok.id, token: fine.token, result: '1' }], t0)
      expect(await runAll()).toEqual([b.id])
    })

    it('waits through a retry: only a final failure settles the dependents', async () => {
      const a = task([], { maxRetries: 1 })
      const b = task([a.id])
      await add(a, b)
      const [c] = await claimAll()
      await broker.fail([{ id: a.id, token: c!.token, error: BOOM, outcome: 'error', retryAt: t0 }], t0)
      expect(await status(b.id)).toBe('pending')
      expect(await runAll()).toEqual([a.id])
      expect(await runAll()).toEqual([b.id])
    })

    it("cancels the pending tasks that depend on a cancelled one under 'fail', and runs the 'ignore' ones", async () => {
      const a = task()
      const b = task([a.id])
      const c = task([b.id])
      const d = task([[a.id, 'ignore']])
      await add(a, b, c, d)
      await broker.cancel(a.id, t0)
      expect(await status(b.id)).toBe('cancelled')
      expect(await status(c.id)).toBe('cancelled')
      expect((await broker.get(c.id))?.error?.message).toContain('was cancelled')
      expect(await runAll()).toEqual([d.id])
    })

    it('lets a waiting task be cancelled; its dependency completing later changes nothing', async () => {
      const a = task()
      const b = task([a.id])
      await add(a, b)
      expect((await broker.cancel(b.id, t0)).status).toBe('cancelled')
      expect(await runAll()).toEqual([a.id])
      expect(await status(b.id)).toBe('cancelled')
      expect(await runAll()).toEqual([])
    })

    it('queues at once a task whose dependencies completed already, and fails one whose dependency failed', async () => {
      const a = task()
      const f = task()
      await add(a)
      await runAll()
      await add(f)
      await failAll()
      const [done, failed, ignored] = await add(task([a.id]), task([f.id]), task([[f.id, 'ignore']]))
      expect(await status(done!)).toBe('queued')
      expect(await status(failed!)).toBe('failed')
      expect(await status(ignored!)).toBe('queued')
    })

    it('rejects an unknown dependency with NOT_FOUND and stores nothing of the batch', async () => {
      const a = task()
      const b = task([a.id, randomUUID()])
      const err = await broker.enqueueFlow([a, b], t0).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(TaskloomError)
      expect((err as TaskloomError).code).toBe('NOT_FOUND')
      expect(await broker.get(a.id)).toBeNull()
      expect(await broker.get(b.id)).toBeNull()
    })

    it("rejects another tenant's task as a dependency with NOT_FOUND", async () => {
      const theirs = task([], { tenantId: 'tenant-b' })
      await add(theirs)
      const mine = task([theirs.id])
      const err = await broker.enqueueFlow([mine], t0).catch((e: unknown) => e)
      expect((err as TaskloomError).code).toBe('NOT_FOUND')
      expect(await broker.get(mine.id)).toBeNull()
    })

    it('shows dependsOn, dependents and waitingFor', async () => {
      const a = task()
      const b = task([[a.id, 'ignore']])
      await add(a, b)
      expect(await broker.get(b.id)).toMatchObject({
        status: 'pending',
        dependsOn: [{ id: a.id, queue: broker.queueName, onFailure: 'ignore' }],
        waitingFor: [{ id: a.id, queue: broker.queueName }],
      })
      expect((await broker.get(a.id))?.dependents).toEqual([{ id: b.id, queue: broker.queueName }])
      await runAll()
      expect((await broker.get(b.id))?.waitingFor).toEqual([])
    })

    it('answers a repeated id as the task it made (a retried submit), adding nothing', async () => {
      const a = task()
      const b = task([a.id])
      await add(a, b)
      const again = await broker.enqueueFlow([a, b], t0)
      expect(again.results.map((r) => r.deduplicated)).toEqual([true, true])
      expect(await runAll()).toEqual([a.id])
      expect(await runAll()).toEqual([b.id])
    })

    it('records a flow, and answers a repeated flow key with the first flow', async () => {
      const a = task()
      const b = task([a.id])
      const record = {
        id: randomUUID(),
        tenantId: 'tenant-a',
        nodes: { a: a.id, b: b.id },
        rootId: b.id,
        createdAt: t0,
      }
      const first = await broker.enqueueFlow([a, b], t0, { record, key: { key: 'nightly', ttlMs: 60_000 } })
      expect(first.deduplicated).toBe(false)
      expect(await broker.getFlow(record.id)).toEqual(record)
      expect((await broker.get(a.id))?.flowId).toBe(record.id)
      const c = task()
      const other = { ...record, id: randomUUID(), nodes: { c: c.id } }
      const repeat = await broker.enqueueFlow([c], t0 + 1, {
        record: other,
        key: { key: 'nightly', ttlMs: 60_000 },
      })
      expect(repeat).toMatchObject({ deduplicated: true, flow: record })
      expect(await broker.get(c.id)).toBeNull()
    })

    it('holds a dependent with a later runAt until then once released', async () => {
      const a = task()
      const b = task([a.id], { runAt: t0 + 5000 })
      await add(a, b)
      await runAll()
      expect(await status(b.id)).toBe('pending')
      expect(await runAll(t0 + 1000)).toEqual([])
      expect(await runAll(t0 + 5000)).toEqual([b.id])
    })
  })
}

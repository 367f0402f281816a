/**
 * The Broker conformance suite for flow control (src/flow): fair rotation between groups, weights,
 * strict priority, group concurrency, start-rate limits, pauses and throttles. Every broker passes
 * it unchanged, like conformance.ts; explicit `now` values, nothing sleeps.
 *
 * ```ts
 * flowConformance('MemoryBroker', (name, flow) => new MemoryBroker(name, { flow }))
 * ```
 */
import { randomUUID } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import type { Broker, ClaimedTask, FlowConfig, NewTask } from '../../src/broker/broker.js'
import { uniqueName } from '../helpers/services.js'

const t0 = 1_000_000
const LEASE = 30_000
const DAY = 86_400_000

const FAIR: FlowConfig = { fair: true, weights: {}, groupConcurrency: 0, groupCaps: {}, limits: [] }
const flow = (overrides: Partial<FlowConfig>): FlowConfig => ({ ...FAIR, fair: false, ...overrides })

export function flowConformance(
  label: string,
  make: (queueName: string, flow: FlowConfig | undefined) => Promise<Broker> | Broker,
  cleanup?: (broker: Broker) => Promise<void>,
): void {
  describe(`${label}: flow control`, () => {
    const made: Broker[] = []

    afterEach(async () => {
      for (const b of made.splice(0)) await (cleanup ? cleanup(b) : b.close())
    })

    async function open(config?: FlowConfig): Promise<Broker> {
      const broker = await make(uniqueName('flow'), config)
      made.push(broker)
      return broker
    }

    function task(overrides: Partial<NewTask>): NewTask {
      return {
        id: randomUUID(),
        name: 'job',
        tenantId: 'a',
        payload: '{}',
        priority: 'normal',
        runAt: t0,
        timeoutMs: 60_000,
        maxRetries: 3,
        createdAt: t0,
        idempotencyTtlMs: DAY,
        ...overrides,
      }
    }

    /** Enqueues `n` tasks of tenant (group) `tenantId`, one batch, and answers their ids. */
    async function add(broker: Broker, n: number, overrides: Partial<NewTask> = {}, now = t0) {
      const tasks = Array.from({ length: n }, () => task(overrides))
      await broker.enqueue(tasks, now)
      return tasks.map((t) => t.id)
    }

    const groupsOf = (tasks: ClaimedTask[]) => tasks.map((t) => t.group ?? t.tenantId)
    const take = async (broker: Broker, max: number, now = t0, worker = 'w1') =>
      (await broker.claim(worker, max, LEASE, now)).tasks

    describe('fair rotation', () => {
      it('rotates claims between groups within a level, one each in turn', async () => {
        const broker = await open(FAIR)
        await add(broker, 4, { tenantId: 'a' })
        await add(broker, 2, { tenantId: 'b' })
        await add(broker, 1, { tenantId: 'c' })
        expect(groupsOf(await take(broker, 5))).toEqual(['a', 'b', 'c', 'a', 'b'])
        expect(groupsOf(await take(broker, 5))).toEqual(['a', 'a'])
      })

      it('rotates the same one task at a time as in batches', async () => {
        const broker = await open(FAIR)
        await add(broker, 3, { tenantId: 'a' })
        await add(broker, 3, { tenantId: 'b' })
        const order: string[] = []
        for (let i = 0; i < 6; i++) order.push(...groupsOf(await take(broker, 1)))
        expect(order).toEqual(['a', 'b', 'a', 'b', 'a', 'b'])
      })

      it('keeps each group first in, first out', async () => {
        const broker = await open(FAIR)
        const a = await add(broker, 3, { tenantId: 'a' })
        const b = await add(broker, 3, { tenantId: 'b' })
        const ids = (await take(broker, 6)).map((t) => t.id)
        expect(ids.filter((id) => a.includes(id))).toEqual(a)
        expect(ids.filter((id) => b.includes(id))).toEqual(b)
      })

      it('splits claims by weight', async () => {
        const broker = await open({ ...FAIR, weights: { a: 3 } })
        await add(broker, 12, { tenantId: 'a' })
        await add(broker, 12, { tenantId: 'b' })
        const first = groupsOf(await take(broker, 8))
        expect(first.filter((g) => g === 'a')).toHaveLength(6)
        expect(first.filter((g) => g === 'b')).toHaveLength(2)
      })

      it('keeps priority strict between levels', async () => {
        const broker = await open(FAIR)
        await add(broker, 3, { tenantId: 'a', priority: 'low' })
        await add(broker, 2, { tenantId: 'b', priority: 'high' })
        await add(broker, 1, { tenantId: 'c', priority: 'critical' })
        const claimed = await take(broker, 6)
        expect(claimed.map((t) => t.priority)).toEqual(['critical', 'high', 'high', 'low', 'low', 'low'])
      })

      it('rotates by the submit option group, defaulting to the tenant', async () => {
        const broker = await open(FAIR)
        await add(broker, 2, { tenantId: 'a', group: 'import' })
        await add(broker, 2, { tenantId: 'a' })
        const claimed = await take(broker, 4)
        expect(claimed.map((t) => t.group ?? '')).toEqual(['', 'import', '', 'import'])
        expect(claimed.every((t) => t.tenantId === 'a')).toBe(true)
      })

      it('leaves first in, first out alone when fairness is off', async () => {
        const broker = await open(undefined)
        const a = await add(broker, 3, { tenantId: 'a' })
        const b = await add(broker, 2, { tenantId: 'b' })
        expect((await take(broker, 5)).map((t) => t.id)).toEqual([...a, ...b])
      })

      it('counts tasks in lanes as ready', async () => {
        const broker = await open(FAIR)
        await add(broker, 2, { tenantId: 'a' })
        await add(broker, 1, { tenantId: 'b', priority: 'high' })
        const counts = await broker.counts()
        expect(counts.ready).toEqual({ critical: 0, high: 1, normal: 2, low: 0 })
        await take(broker, 2)
        expect((await broker.counts()).ready).toEqual({ critical: 0, high: 0, normal: 1, low: 0 })
      })
    })

    describe('group concurrency', () => {
      it('never runs more of a group at once than its cap, and does not block other groups', async () => {
        const broker = await open(flow({ groupConcurrency: 2, groupCaps: { b: 1 } }))
        await add(broker, 5, { tenantId: 'a' })
        await add(broker, 3, { tenantId: 'b' })
        await add(broker, 1, { tenantId: 'c' })
        const claimed = await take(broker, 10)
        expect(groupsOf(claimed).sort()).toEqual(['a', 'a', 'b', 'c'])
        expect(await take(broker, 10, t0 + 1)).toEqual([])
        const state = await broker.flowState(t0 + 1)
        expect(state.groups.find((g) => g.group === 'a')).toEqual({
          group: 'a',
          ready: 3,
          running: 2,
          blocked: 'capped',
        })
      })

      it('frees a slot on completion, failure, release and deferral', async () => {
        const broker = await open(flow({ groupConcurrency: 1 }))
        await add(broker, 5, { tenantId: 'a' })
        let [held] = await take(broker, 5)
        const frees: ((t: ClaimedTask) => Promise<unknown>)[] = [
          (t) => broker.complete([{ id: t.id, token: t.token, result: '1' }], t0 + 1),
          (t) =>
            broker.fail(
              [
                {
                  id: t.id,
                  token: t.token,
                  error: { name: 'E', message: 'x' },
                  outcome: 'error',
                  retryAt: null,
                },
              ],
              t0 + 1,
            ),
          (t) => broker.release([{ id: t.id, token: t.token }], t0 + 1),
          (t) => broker.defer([{ id: t.id, token: t.token }], t0 + DAY, t0 + 1),
        ]
        for (const free of frees) {
          expect(await take(broker, 5, t0 + 1)).toEqual([])
          await free(held!)
          const next = await take(broker, 5, t0 + 2)
          expect(next).toHaveLength(1)
          held = next[0]
        }
      })

      it('frees the slot of an expired lease', async () => {
        const broker = await open(flow({ groupConcurrency: 1 }))
        const [first] = await add(broker, 2, { tenantId: 'a' })
        expect((await take(broker, 5)).map((t) => t.id)).toEqual([first])
        const again = await take(broker, 5, t0 + LEASE + 1)
        // The expired task goes back first in line and takes the one slot again.
        expect(again.map((t) => [t.id, t.attempt])).toEqual([[first, 2]])
        expect((await broker.flowState(t0 + LEASE + 1)).groups).toEqual([
          { group: 'a', ready: 1, running: 1, blocked: 'capped' },
        ])
      })

      it("frees the slots of a reaped worker's tasks", async () => {
        const broker = await open(flow({ groupConcurrency: 1 }))
        await add(broker, 2, { tenantId: 'a' })
        await broker.heartbeat(
          {
            id: 'w1',
            status: 'active',
            lastHeartbeat: t0,
            heartbeatMs: 1000,
            tasksInHand: 1,
            tasksProcessed: 0,
            hostname: 'h',
            pid: 1,
            concurrency: 1,
            startedAt: t0,
          },
          t0,
        )
        await take(broker, 5, t0, 'w1')
        expect(await broker.reapWorkers(t0 + 5000)).toEqual([{ id: 'w1', tasks: 1 }])
        const next = await take(broker, 5, t0 + 5001, 'w2')
        expect(next).toHaveLength(1)
        expect(next[0]!.attempt).toBe(2)
      })
    })

    describe('rate limits', () => {
      it('starts at most max tasks of a group per window, and says when the next may start', async () => {
        const broker = await open(flow({ limits: [{ per: 'group', max: 2, durationMs: 1000 }] }))
        await add(broker, 5, { tenantId: 'a' })
        await add(broker, 1, { tenantId: 'b' })
        expect(groupsOf(await take(broker, 10)).sort()).toEqual(['a', 'a', 'b'])
        const waiting = await broker.claim('w1', 10, LEASE, t0 + 500)
        expect(waiting.tasks).toEqual([])
        expect(waiting.nextWakeAt).toBe(t0 + 1000)
        expect(await take(broker, 10, t0 + 999)).toEqual([])
        expect(groupsOf(await take(broker, 10, t0 + 1000))).toEqual(['a', 'a'])
        expect(groupsOf(await take(broker, 10, t0 + 2000))).toEqual(['a'])
      })

      it('starts at most max tasks of a task name per window, holding the rest without an attempt', async () => {
        const broker = await open(flow({ limits: [{ per: 'task', max: 1, durationMs: 1000 }] }))
        const x = await add(broker, 3, { name: 'x' })
        const [y] = await add(broker, 1, { name: 'y' })
        expect((await take(broker, 10)).map((t) => t.id)).toEqual([x[0], y])
        expect((await broker.counts()).ready.normal).toBe(0)
        const second = await broker.claim('w1', 10, LEASE, t0 + 10)
        expect(second.tasks).toEqual([])
        expect(second.nextWakeAt).toBe(t0 + 1000)
        expect((await take(broker, 10, t0 + 1000)).map((t) => [t.id, t.attempt])).toEqual([[x[1], 1]])
        expect((await take(broker, 10, t0 + 2000)).map((t) => t.id)).toEqual([x[2]])
      })

      it('starts at most max tasks of the queue per window', async () => {
        const broker = await open(flow({ limits: [{ per: 'queue', max: 3, durationMs: 1000 }] }))
        await add(broker, 7)
        expect(await take(broker, 10)).toHaveLength(3)
        const full = await broker.claim('w1', 10, LEASE, t0 + 1)
        expect(full.tasks).toEqual([])
        expect(full.nextWakeAt).toBe(t0 + 1000)
        expect(await take(broker, 10, t0 + 1000)).toHaveLength(3)
        expect(await take(broker, 10, t0 + 2000)).toHaveLength(1)
      })
    })

    describe('pause and resume', () => {
      it('stops every claim of a paused queue; submits still succeed; resume lets them run', async () => {
        const broker = await open(undefined)
        await broker.pause({ kind: 'queue' }, t0)
        const [id] = await add(broker, 1)
        expect(await take(broker, 10)).toEqual([])
        expect((await broker.flowState(t0)).paused.queue).toBe(true)
        await broker.resume({ kind: 'queue' }, t0)
        expect((await take(broker, 10)).map((t) => t.id)).toEqual([id])
      })

      it('stops one task name, in order when resumed, while others run', async () => {
        const broker = await open(undefined)
        const x = await add(broker, 2, { name: 'x' })
        const [y] = await add(broker, 1, { name: 'y' })
        await broker.pause({ kind: 'task', name: 'x' }, t0)
        expect((await take(broker, 10)).map((t) => t.id)).toEqual([y])
        expect((await broker.flowState(t0)).paused.tasks).toEqual(['x'])
        await broker.resume({ kind: 'task', name: 'x' }, t0)
        expect((await take(broker, 10)).map((t) => t.id)).toEqual(x)
      })

      for (const config of [undefined, FAIR]) {
        it(`stops one group ${config ? 'with' : 'without'} fairness`, async () => {
          const broker = await open(config)
          const a = await add(broker, 2, { tenantId: 'a' })
          const b = await add(broker, 2, { tenantId: 'b' })
          await broker.pause({ kind: 'group', group: 'a' }, t0)
          expect((await take(broker, 10)).map((t) => t.id)).toEqual(b)
          expect((await broker.flowState(t0)).paused.groups).toEqual(['a'])
          await broker.resume({ kind: 'group', group: 'a' }, t0)
          expect((await take(broker, 10)).map((t) => t.id)).toEqual(a)
        })
      }
    })

    describe('throttle (a handler was rate-limited upstream)', () => {
      for (const config of [undefined, FAIR]) {
        it(`gives the task back without an attempt and stops its group until the time ${config ? 'with' : 'without'} fairness`, async () => {
          const broker = await open(config)
          const [a1] = await add(broker, 2, { tenantId: 'a' })
          const [b1] = await add(broker, 1, { tenantId: 'b' })
          const [first] = await take(broker, 1)
          expect(first!.id).toBe(a1)
          const outcome = await broker.throttle(
            [{ id: first!.id, token: first!.token }],
            { kind: 'group', group: 'a' },
            t0 + 500,
            t0 + 10,
          )
          expect(outcome).toEqual(['ok'])
          expect((await broker.get(a1!))!.status).toBe('queued')
          const during = await broker.claim('w1', 10, LEASE, t0 + 20)
          expect(during.tasks.map((t) => t.id)).toEqual([b1])
          expect(during.nextWakeAt).toBe(t0 + 500)
          expect((await broker.flowState(t0 + 20)).waiting).toEqual([
            { kind: 'group', name: 'a', until: t0 + 500 },
          ])
          const after = await take(broker, 10, t0 + 500)
          expect(after.map((t) => [t.id, t.attempt])).toEqual([
            [a1, 1],
            [expect.any(String), 1],
          ])
        })
      }

      it('stops a task name until the time', async () => {
        const broker = await open(undefined)
        await add(broker, 2, { name: 'x' })
        const [first] = await take(broker, 1)
        await broker.throttle(
          [{ id: first!.id, token: first!.token }],
          { kind: 'task', name: 'x' },
          t0 + 300,
          t0,
        )
        expect(await take(broker, 10, t0 + 299)).toEqual([])
        expect(await take(broker, 10, t0 + 300)).toHaveLength(2)
      })

      it('answers stale for a token that is not current', async () => {
        const broker = await open(undefined)
        await add(broker, 1)
        const [first] = await take(broker, 1)
        const stale = await broker.throttle(
          [{ id: first!.id, token: first!.token + 1 }],
          { kind: 'task', name: 'job' },
          t0 + 100,
          t0,
        )
        expect(stale).toEqual(['stale'])
      })
    })
  })
}

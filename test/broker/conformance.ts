/**
 * The Broker conformance suite: every implementation of src/broker/broker.ts passes it unchanged.
 *
 * ```ts
 * brokerConformance('MemoryBroker', (name) => new MemoryBroker(name))
 * ```
 *
 * Every spec passes explicit `now` values, so nothing sleeps except the `waitForWork` specs. Each
 * spec gets a broker for a queue name no other spec uses. Everything is awaited, so a broker with
 * real I/O behaves as the in-process one does.
 */
import { randomUUID } from 'node:crypto'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Broker, ClaimedTask, NewTask } from '../../src/broker/broker.js'
import { TaskloomError, type TaskloomErrorCode } from '../../src/errors.js'
import type { ErrorInfo, Priority } from '../../src/task/model.js'
import { PRIORITIES } from '../../src/task/model.js'
import { uniqueName } from '../helpers/services.js'
import { outputConformance } from './conformance-output.js'

const t0 = 1_000_000
const LEASE = 30_000
const DAY = 24 * 60 * 60 * 1000
const BOOM: ErrorInfo = { name: 'Error', message: 'boom' }

/**
 * Registers the suite under `label`. `make` builds a broker for a fresh queue name; `cleanup`
 * disposes of it after each spec (default: `broker.close()`).
 */
export function brokerConformance(
  label: string,
  make: (queueName: string) => Promise<Broker> | Broker,
  cleanup?: (broker: Broker) => Promise<void>,
): void {
  describe(label, () => {
    let broker: Broker

    beforeEach(async () => {
      broker = await make(uniqueName('broker'))
    })

    afterEach(async () => {
      await (cleanup ? cleanup(broker) : broker.close())
    })

    function newTask(overrides: Partial<NewTask> = {}): NewTask {
      return {
        id: randomUUID(),
        name: 'send-email',
        tenantId: 'tenant-a',
        payload: '{"to":"ada@example.com"}',
        priority: 'normal',
        runAt: t0,
        timeoutMs: 60_000,
        maxRetries: 3,
        createdAt: t0,
        idempotencyTtlMs: DAY,
        ...overrides,
      }
    }

    /** Enqueues one batch at `now` and answers the new ids, in order. */
    async function enqueue(overrides: Partial<NewTask>[], now = t0): Promise<string[]> {
      const tasks = overrides.map((o) => newTask(o))
      const results = await broker.enqueue(tasks, now)
      expect(results.map((r) => r.deduplicated)).toEqual(tasks.map(() => false))
      return results.map((r) => r.id)
    }

    async function enqueueOne(overrides: Partial<NewTask> = {}, now = t0): Promise<string> {
      return only(await enqueue([overrides], now))
    }

    async function claim(
      max: number,
      now: number,
      workerId = 'worker-1',
      leaseMs = LEASE,
    ): Promise<ClaimedTask[]> {
      return (await broker.claim(workerId, max, leaseMs, now)).tasks
    }

    async function claimOne(now: number, workerId = 'worker-1', leaseMs = LEASE): Promise<ClaimedTask> {
      return only(await claim(1, now, workerId, leaseMs))
    }

    async function record(id: string) {
      const found = await broker.get(id)
      if (!found) throw new Error(`expected task ${id} to exist`)
      return found
    }

    /** Claims a task and fails it into the dead-letter queue at `now`. */
    async function killOne(now: number, overrides: Partial<NewTask> = {}): Promise<string> {
      const id = await enqueueOne(overrides, now)
      const claimed = await claimOne(now)
      expect(claimed.id).toBe(id)
      expect(
        await broker.fail([{ id, token: claimed.token, error: BOOM, outcome: 'error', retryAt: null }], now),
      ).toEqual(['ok'])
      return id
    }

    describe('enqueue', () => {
      it('queues a task that is due and answers its id, status and createdAt', async () => {
        const task = newTask({ createdAt: t0 - 5 })
        expect(await broker.enqueue([task], t0)).toEqual([
          { id: task.id, status: 'queued', createdAt: t0 - 5, deduplicated: false },
        ])
        const stored = await record(task.id)
        expect(stored).toMatchObject({
          id: task.id,
          name: task.name,
          tenantId: task.tenantId,
          payload: task.payload,
          priority: 'normal',
          status: 'queued',
          attempt: 0,
          maxRetries: 3,
          timeoutMs: 60_000,
          createdAt: t0 - 5,
          runAt: t0,
          history: [],
        })
        expect(stored.result).toBeUndefined()
        expect(stored.error).toBeUndefined()
        expect(stored.finishedAt).toBeUndefined()
      })

      it('queues a task whose runAt has already passed', async () => {
        const id = await enqueueOne({ runAt: t0 - 60_000 })
        expect((await record(id)).status).toBe('queued')
        expect((await claimOne(t0)).id).toBe(id)
      })

      it('keeps a task with a future runAt pending', async () => {
        const task = newTask({ runAt: t0 + 1000 })
        expect(await broker.enqueue([task], t0)).toEqual([
          { id: task.id, status: 'pending', createdAt: t0, deduplicated: false },
        ])
        expect((await record(task.id)).status).toBe('pending')
        expect(await broker.claim('worker-1', 10, LEASE, t0 + 999)).toEqual({
          tasks: [],
          nextWakeAt: t0 + 1000,
        })
      })

      it('answers a batch item by item, in the order given', async () => {
        const tasks = [newTask(), newTask({ runAt: t0 + 1 }), newTask({ priority: 'low' })]
        const results = await broker.enqueue(tasks, t0)
        expect(results.map((r) => [r.id, r.status])).toEqual([
          [tasks[0]!.id, 'queued'],
          [tasks[1]!.id, 'pending'],
          [tasks[2]!.id, 'queued'],
        ])
      })

      it('answers a re-sent task id with the existing task instead of adding it twice', async () => {
        const task = newTask()
        await broker.enqueue([task], t0)
        expect(await broker.enqueue([{ ...task, payload: '"changed"' }], t0 + 1)).toEqual([
          { id: task.id, status: 'queued', createdAt: t0, deduplicated: true },
        ])
        expect((await record(task.id)).payload).toBe(task.payload)
        expect(await claim(10, t0 + 2)).toHaveLength(1)
      })
    })

    describe('get', () => {
      it('answers null for an unknown id', async () => {
        expect(await broker.get('no-such-task')).toBeNull()
      })

      it('returns a copy that the caller cannot use to change the task', async () => {
        const id = await enqueueOne()
        const copy = await record(id)
        copy.status = 'completed'
        copy.history.push({
          attempt: 9,
          workerId: 'x',
          startedAt: 0,
          endedAt: 0,
          outcome: 'error',
          error: BOOM,
        })
        expect(await record(id)).toMatchObject({ status: 'queued', history: [] })
      })
    })

    describe('claim', () => {
      it('answers no tasks and no wake time from an empty queue', async () => {
        expect(await broker.claim('worker-1', 10, LEASE, t0)).toEqual({ tasks: [], nextWakeAt: null })
      })

      it('hands out a task with its fields, attempt 1 and a fencing token', async () => {
        const task = newTask({
          priority: 'high',
          maxRetries: 5,
          timeoutMs: 1234,
          createdAt: t0 - 10,
          runAt: t0 - 3,
        })
        await broker.enqueue([task], t0)
        const claimed = await claimOne(t0 + 7)
        expect(claimed).toEqual({
          id: task.id,
          name: task.name,
          tenantId: task.tenantId,
          payload: task.payload,
          priority: 'high',
          attempt: 1,
          maxRetries: 5,
          timeoutMs: 1234,
          createdAt: t0 - 10,
          runAt: t0 - 3,
          token: expect.any(Number),
        })
      })

      it('carries the trace context given at enqueue to every claim of the task', async () => {
        const tc = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\nvendor=abc'
        const id = await enqueueOne({ tc })
        const first = await claimOne(t0)
        expect(first.tc).toBe(tc)
        expect(await broker.release([{ id, token: first.token }], t0)).toEqual(['ok'])
        expect((await claimOne(t0 + 1)).tc).toBe(tc)
        await enqueueOne()
        expect((await claimOne(t0 + 2)).tc).toBeUndefined()
      })

      it('marks a claimed task processing, with startedAt, workerId and attempt', async () => {
        const id = await enqueueOne()
        await claimOne(t0 + 5, 'worker-7')
        expect(await record(id)).toMatchObject({
          status: 'processing',
          attempt: 1,
          startedAt: t0 + 5,
          workerId: 'worker-7',
        })
      })

      it('claims in strict priority order: critical, high, normal, low', async () => {
        const ids = await enqueue([
          { priority: 'low' },
          { priority: 'normal' },
          { priority: 'high' },
          { priority: 'critical' },
          { priority: 'low' },
          { priority: 'critical' },
        ])
        const claimed = await claim(10, t0)
        expect(claimed.map((c) => c.id)).toEqual([ids[3], ids[5], ids[2], ids[1], ids[0], ids[4]])
      })

      it('is first in, first out within a priority level', async () => {
        const first = await enqueue([{}, {}], t0)
        const second = await enqueue([{}, {}], t0 + 1)
        expect((await claim(10, t0 + 2)).map((c) => c.id)).toEqual([...first, ...second])
      })

      it('drains a higher level before it touches a lower one, across claims', async () => {
        const [c1, c2, c3, l1] = await enqueue([
          { priority: 'critical' },
          { priority: 'critical' },
          { priority: 'critical' },
          { priority: 'low' },
        ])
        expect((await claim(2, t0)).map((c) => c.id)).toEqual([c1, c2])
        expect((await claim(2, t0)).map((c) => c.id)).toEqual([c3, l1])
      })

      it('sees a higher-priority task enqueued after lower ones first', async () => {
        await enqueue([{ priority: 'low' }, { priority: 'low' }])
        const urgent = await enqueueOne({ priority: 'critical' }, t0 + 1)
        expect((await claimOne(t0 + 2)).id).toBe(urgent)
      })

      it('claims no more than max tasks', async () => {
        await enqueue([{}, {}, {}, {}, {}])
        expect(await claim(3, t0)).toHaveLength(3)
        expect(await claim(3, t0)).toHaveLength(2)
        expect(await claim(3, t0)).toHaveLength(0)
      })

      it('never hands out a task that is already processing', async () => {
        await enqueueOne()
        await claimOne(t0, 'worker-1')
        expect(await claim(10, t0 + 1, 'worker-2')).toEqual([])
      })

      it('issues strictly increasing fencing tokens across claims and workers', async () => {
        await enqueue([{}, {}, {}, {}, {}])
        const tokens = [
          ...(await claim(3, t0, 'worker-1')).map((c) => c.token),
          ...(await claim(1, t0, 'worker-2')).map((c) => c.token),
          ...(await claim(1, t0, 'worker-1', 1000)).map((c) => c.token),
        ]
        // The last lease expires and the task is claimed again.
        tokens.push(...(await claim(1, t0 + 1000, 'worker-3')).map((c) => c.token))
        expect(tokens).toHaveLength(6)
        for (let i = 1; i < tokens.length; i++) expect(tokens[i]).toBeGreaterThan(tokens[i - 1]!)
      })

      it('reports the earliest lease deadline as nextWakeAt when nothing is delayed', async () => {
        await enqueue([{}, {}])
        await claim(1, t0, 'worker-1', 5000)
        const result = await broker.claim('worker-2', 1, 2000, t0 + 100)
        expect(result.tasks).toHaveLength(1)
        expect(result.nextWakeAt).toBe(t0 + 2100)
      })

      it('reports whichever comes first of a delayed task and a lease deadline as nextWakeAt', async () => {
        await enqueue([{ runAt: t0 + 500 }, {}])
        expect((await broker.claim('worker-1', 1, 1000, t0)).nextWakeAt).toBe(t0 + 500)
        await enqueueOne({ runAt: t0 + 5000 })
        // The first delayed task is promoted and leased until t0 + 1600; the lease from t0 ends at t0 + 1000.
        const result = await broker.claim('worker-1', 1, 1000, t0 + 600)
        expect(result.tasks).toHaveLength(1)
        expect(result.nextWakeAt).toBe(t0 + 1000)
      })
    })

    describe('delayed tasks', () => {
      it('promotes a delayed task exactly at its runAt', async () => {
        const id = await enqueueOne({ runAt: t0 + 1000 })
        expect(await claim(1, t0 + 999)).toEqual([])
        const claimed = await claimOne(t0 + 1000)
        expect(claimed).toMatchObject({ id, attempt: 1, runAt: t0 + 1000 })
      })

      it('promotes due tasks earliest first, behind tasks already queued at their level', async () => {
        const later = await enqueueOne({ runAt: t0 + 200 })
        const sooner = await enqueueOne({ runAt: t0 + 100 })
        const queued = await enqueueOne({}, t0 + 150)
        expect((await claim(10, t0 + 300)).map((c) => c.id)).toEqual([queued, sooner, later])
      })

      it('still applies strict priority to promoted tasks', async () => {
        const low = await enqueueOne({ priority: 'low' })
        const critical = await enqueueOne({ priority: 'critical', runAt: t0 + 10 })
        expect((await claim(10, t0 + 10)).map((c) => c.id)).toEqual([critical, low])
      })
    })

    describe('leases', () => {
      it('re-delivers a task whose lease expired', async () => {
        const id = await enqueueOne()
        const first = await claimOne(t0, 'worker-1', 1000)
        expect(await claim(1, t0 + 999, 'worker-2')).toEqual([])
        const second = await claimOne(t0 + 1000, 'worker-2')
        expect(second).toMatchObject({ id, attempt: 2 })
        expect(second.token).toBeGreaterThan(first.token)
        const stored = await record(id)
        expect(stored).toMatchObject({
          status: 'processing',
          attempt: 2,
          workerId: 'worker-2',
          startedAt: t0 + 1000,
        })
        expect(stored.history).toEqual([
          {
            attempt: 1,
            workerId: 'worker-1',
            startedAt: t0,
            endedAt: t0 + 1000,
            outcome: 'lease-expired',
            error: { name: 'LeaseExpiredError', message: expect.stringMatching(/^lease expired/) },
          },
        ])
        expect(stored.error?.name).toBe('LeaseExpiredError')
      })

      it('puts a task whose lease expired at the head of its level', async () => {
        const id = await enqueueOne()
        await claimOne(t0, 'worker-1', 1000)
        const waiting = await enqueue([{}, {}], t0 + 1)
        expect((await claim(10, t0 + 1000, 'worker-2')).map((c) => c.id)).toEqual([id, ...waiting])
      })

      it('returns several expired leases in the order they expired', async () => {
        const [a, b] = await enqueue([{}, {}])
        await claim(1, t0, 'worker-1', 2000)
        await claim(1, t0, 'worker-1', 1000)
        const later = await enqueueOne({}, t0 + 1)
        expect((await claim(10, t0 + 5000, 'worker-2')).map((c) => c.id)).toEqual([b, a, later])
      })

      it('dead-letters a task whose lease expired on its last attempt', async () => {
        const id = await enqueueOne({ maxRetries: 1 })
        await claimOne(t0, 'worker-1', 1000)
        await claimOne(t0 + 1000, 'worker-2', 1000)
        expect(await broker.claim('worker-3', 10, 1000, t0 + 2000)).toEqual({ tasks: [], nextWakeAt: null })
        const stored = await record(id)
        expect(stored).toMatchObject({
          status: 'failed',
          attempt: 2,
          finishedAt: t0 + 2000,
          error: { name: 'LeaseExpiredError' },
        })
        expect(stored.history.map((h) => [h.attempt, h.workerId, h.outcome])).toEqual([
          [1, 'worker-1', 'lease-expired'],
          [2, 'worker-2', 'lease-expired'],
        ])
        expect((await broker.listDead(10, 0)).items.map((t) => t.id)).toEqual([id])
        expect((await broker.counts()).dead).toBe(1)
      })

      it('dead-letters on the first expiry when maxRetries is 0', async () => {
        const id = await enqueueOne({ maxRetries: 0 })
        await claimOne(t0, 'worker-1', 1000)
        expect(await claim(1, t0 + 1000)).toEqual([])
        expect((await record(id)).status).toBe('failed')
      })

      it('extending a lease keeps a task from being reaped', async () => {
        const id = await enqueueOne()
        const claimed = await claimOne(t0, 'worker-1', 1000)
        expect(await broker.extend([{ id, token: claimed.token }], 1000, t0 + 900)).toEqual(['ok'])
        expect(await claim(1, t0 + 1000, 'worker-2')).toEqual([])
        expect((await broker.claim('worker-2', 1, 1000, t0 + 1899)).nextWakeAt).toBe(t0 + 1900)
        expect((await claimOne(t0 + 1900, 'worker-2')).id).toBe(id)
      })

      it('can shorten a lease: extend sets the deadline to now + leaseMs', async () => {
        const id = await enqueueOne()
        const claimed = await claimOne(t0, 'worker-1', 10_000)
        expect(await broker.extend([{ id, token: claimed.token }], 100, t0 + 100)).toEqual(['ok'])
        expect((await claimOne(t0 + 200, 'worker-2')).id).toBe(id)
      })

      it('accepts a late completion while no other worker has taken the task', async () => {
        const id = await enqueueOne()
        const claimed = await claimOne(t0, 'worker-1', 1000)
        expect(await broker.complete([{ id, token: claimed.token, result: '1' }], t0 + 5000)).toEqual(['ok'])
        expect((await record(id)).status).toBe('completed')
        expect(await claim(1, t0 + 6000)).toEqual([])
      })
    })

    describe('fencing', () => {
      it("rejects a completion from a worker that lost its lease; the winner's result stands", async () => {
        const id = await enqueueOne()
        const loser = await claimOne(t0, 'worker-1', 1000)
        const winner = await claimOne(t0 + 1000, 'worker-2', 1000)
        expect(winner.id).toBe(id)
        expect(await broker.complete([{ id, token: loser.token, result: '"loser"' }], t0 + 1100)).toEqual([
          'stale',
        ])
        expect((await record(id)).status).toBe('processing')
        expect(await broker.complete([{ id, token: winner.token, result: '"winner"' }], t0 + 1200)).toEqual([
          'ok',
        ])
        expect(await broker.complete([{ id, token: loser.token, result: '"loser"' }], t0 + 1300)).toEqual([
          'stale',
        ])
        expect(await record(id)).toMatchObject({
          status: 'completed',
          result: '"winner"',
          finishedAt: t0 + 1200,
        })
      })

      it('rejects fail, extend and release with a stale token and changes nothing', async () => {
        const id = await enqueueOne()
        const loser = await claimOne(t0, 'worker-1', 1000)
        const winner = await claimOne(t0 + 1000, 'worker-2', 1000)
        const stale = { id, token: loser.token }
        const failure = { ...stale, error: BOOM, outcome: 'error' as const, retryAt: null }
        expect(await broker.fail([failure], t0 + 1100)).toEqual(['stale'])
        expect(await broker.extend([stale], 60_000, t0 + 1100)).toEqual(['stale'])
        expect(await broker.release([stale], t0 + 1100)).toEqual(['stale'])
        const stored = await record(id)
        expect(stored).toMatchObject({ status: 'processing', attempt: 2, workerId: 'worker-2' })
        expect(stored.history).toHaveLength(1)
        // The lease was not extended by the stale call: it still ends at t0 + 2000.
        expect((await broker.claim('worker-3', 1, LEASE, t0 + 1100)).nextWakeAt).toBe(t0 + 2000)
        expect(winner.token).toBeGreaterThan(loser.token)
      })

      it('rejects a token that was never issued for the task', async () => {
        const id = await enqueueOne()
        const claimed = await claimOne(t0)
        expect(await broker.complete([{ id, token: claimed.token + 1000, result: '1' }], t0)).toEqual([
          'stale',
        ])
        expect((await record(id)).status).toBe('processing')
      })

      it('answers stale for unknown tasks', async () => {
        const ghost = { id: 'no-such-task', token: 1 }
        expect(await broker.complete([{ ...ghost, result: '1' }], t0)).toEqual(['stale'])
        expect(await broker.fail([{ ...ghost, error: BOOM, outcome: 'error', retryAt: null }], t0)).toEqual([
          'stale',
        ])
        expect(await broker.extend([ghost], 1000, t0)).toEqual(['stale'])
        expect(await broker.release([ghost], t0)).toEqual(['stale'])
      })

      it('rejects completing a task that was never claimed', async () => {
        const id = await enqueueOne()
        expect(await broker.complete([{ id, token: 0, result: '1' }], t0)).toEqual(['stale'])
        expect((await record(id)).status).toBe('queued')
      })
    })

    describe('complete', () => {
      it('stores the result and finishedAt of a completed task', async () => {
        const id = await enqueueOne()
        const claimed = await claimOne(t0)
        expect(
          await broker.complete([{ id, token: claimed.token, result: '{"sent":true}' }], t0 + 50),
        ).toEqual(['ok'])
        expect(await record(id)).toMatchObject({
          status: 'completed',
          result: '{"sent":true}',
          finishedAt: t0 + 50,
          attempt: 1,
        })
        expect((await broker.counts()).processing).toBe(0)
      })

      it('answers ok when the same completion is applied twice, keeping the first result', async () => {
        const id = await enqueueOne()
        const claimed = await claimOne(t0)
        expect(await broker.complete([{ id, token: claimed.token, result: '"first"' }], t0 + 1)).toEqual([
          'ok',
        ])
        expect(await broker.complete([{ id, token: claimed.token, result: '"again"' }], t0 + 2)).toEqual([
          'ok',
        ])
        expect(await record(id)).toMatchObject({ status: 'completed', result: '"first"', finishedAt: t0 + 1 })
      })

      it('answers a batch item by item, in the order given', async () => {
        const [a, b] = await enqueue([{}, {}])
        const [ca, cb] = await claim(2, t0)
        const outcomes = await broker.complete(
          [
            { id: a!, token: ca!.token, result: 'a' },
            { id: 'no-such-task', token: 1, result: 'x' },
            { id: b!, token: ca!.token, result: 'b' },
            { id: b!, token: cb!.token, result: 'b' },
          ],
          t0 + 1,
        )
        expect(outcomes).toEqual(['ok', 'stale', 'stale', 'ok'])
      })

      it('will not complete a task that was dead-lettered', async () => {
        const id = await enqueueOne({ maxRetries: 0 })
        const claimed = await claimOne(t0, 'worker-1', 1000)
        await claim(1, t0 + 1000)
        expect(await broker.complete([{ id, token: claimed.token, result: '1' }], t0 + 1001)).toEqual([
          'stale',
        ])
        expect((await record(id)).status).toBe('failed')
      })
    })

    describe('fail', () => {
      it('records the failed attempt in history and as the last error', async () => {
        const id = await enqueueOne()
        const claimed = await claimOne(t0 + 10, 'worker-1')
        const error: ErrorInfo = { name: 'TypeError', message: 'bad', code: 'E_BAD', stack: 'TypeError: bad' }
        await broker.fail(
          [{ id, token: claimed.token, error, outcome: 'timeout', retryAt: t0 + 1000 }],
          t0 + 20,
        )
        const stored = await record(id)
        expect(stored.error).toEqual(error)
        expect(stored.history).toEqual([
          {
            attempt: 1,
            workerId: 'worker-1',
            startedAt: t0 + 10,
            endedAt: t0 + 20,
            outcome: 'timeout',
            error,
          },
        ])
      })

      it('keeps a retry pending until retryAt, then hands it out as the next attempt', async () => {
        const id = await enqueueOne()
        const claimed = await claimOne(t0)
        const retryAt = t0 + 2000
        expect(
          await broker.fail([{ id, token: claimed.token, error: BOOM, outcome: 'error', retryAt }], t0 + 10),
        ).toEqual(['ok'])
        expect(await record(id)).toMatchObject({ status: 'pending', runAt: retryAt })
        expect(await broker.counts()).toMatchObject({ delayed: 1, processing: 0 })
        expect(await broker.claim('worker-1', 1, LEASE, retryAt - 1)).toEqual({
          tasks: [],
          nextWakeAt: retryAt,
        })
        const again = await claimOne(retryAt, 'worker-2')
        expect(again).toMatchObject({ id, attempt: 2, runAt: retryAt })
        expect(again.token).toBeGreaterThan(claimed.token)
      })

      it('queues a retry whose retryAt has passed at the tail of its level', async () => {
        const id = await enqueueOne()
        const claimed = await claimOne(t0)
        const waiting = await enqueueOne({}, t0 + 1)
        await broker.fail(
          [{ id, token: claimed.token, error: BOOM, outcome: 'error', retryAt: t0 + 5 }],
          t0 + 10,
        )
        expect((await record(id)).status).toBe('queued')
        expect((await claim(10, t0 + 10)).map((c) => c.id)).toEqual([waiting, id])
      })

      it('dead-letters a task when retryAt is null', async () => {
        const id = await enqueueOne({ maxRetries: 5 })
        const claimed = await claimOne(t0)
        const error: ErrorInfo = { name: 'NonRetryableError', message: 'no' }
        await broker.fail([{ id, token: claimed.token, error, outcome: 'error', retryAt: null }], t0 + 10)
        expect(await record(id)).toMatchObject({ status: 'failed', finishedAt: t0 + 10, error })
        expect(await broker.counts()).toMatchObject({ dead: 1, processing: 0, delayed: 0 })
        expect(await claim(10, t0 + 1_000_000)).toEqual([])
      })

      it('keeps every failed attempt, oldest first', async () => {
        const id = await enqueueOne({ maxRetries: 2 })
        let now = t0
        for (const outcome of ['error', 'timeout'] as const) {
          const claimed = await claimOne(now)
          now += 10
          const error = { name: 'Error', message: outcome }
          await broker.fail([{ id, token: claimed.token, error, outcome, retryAt: now }], now)
        }
        const last = await claimOne(now, 'worker-9')
        await broker.fail(
          [{ id, token: last.token, error: BOOM, outcome: 'no-handler', retryAt: null }],
          now + 1,
        )
        const stored = await record(id)
        expect(stored.history.map((h) => [h.attempt, h.outcome])).toEqual([
          [1, 'error'],
          [2, 'timeout'],
          [3, 'no-handler'],
        ])
        expect(stored.error).toEqual(BOOM)
      })

      it('rejects failing a task that is no longer processing', async () => {
        const id = await enqueueOne()
        const claimed = await claimOne(t0)
        await broker.complete([{ id, token: claimed.token, result: '1' }], t0 + 1)
        expect(
          await broker.fail(
            [{ id, token: claimed.token, error: BOOM, outcome: 'error', retryAt: null }],
            t0 + 2,
          ),
        ).toEqual(['stale'])
        expect((await record(id)).status).toBe('completed')
      })
    })

    describe('release', () => {
      it('puts the task first in its level and does not count the attempt', async () => {
        const id = await enqueueOne()
        const claimed = await claimOne(t0)
        const waiting = await enqueue([{}, {}], t0 + 1)
        expect(await broker.release([{ id, token: claimed.token }], t0 + 2)).toEqual(['ok'])
        expect(await record(id)).toMatchObject({ status: 'queued', attempt: 0, history: [] })
        const again = await claim(10, t0 + 3, 'worker-2')
        expect(again.map((c) => c.id)).toEqual([id, ...waiting])
        expect(again[0]).toMatchObject({ attempt: 1 })
        expect(again[0]!.token).toBeGreaterThan(claimed.token)
      })

      it('keeps the order of a released batch at the head of each level', async () => {
        const [a, b, c] = await enqueue([{}, {}, { priority: 'low' }])
        const claimed = await claim(3, t0)
        const waiting = await enqueueOne({}, t0 + 1)
        const outcomes = await broker.release(
          claimed.map((t) => ({ id: t.id, token: t.token })),
          t0 + 2,
        )
        expect(outcomes).toEqual(['ok', 'ok', 'ok'])
        expect((await claim(10, t0 + 3)).map((t) => t.id)).toEqual([a, b, waiting, c])
      })

      it('does not dead-letter a task released on its last attempt', async () => {
        const id = await enqueueOne({ maxRetries: 0 })
        const claimed = await claimOne(t0)
        await broker.release([{ id, token: claimed.token }], t0 + 1)
        const again = await claimOne(t0 + 2)
        expect(again).toMatchObject({ id, attempt: 1 })
      })

      it('makes the old token stale', async () => {
        const id = await enqueueOne()
        const claimed = await claimOne(t0)
        await broker.release([{ id, token: claimed.token }], t0 + 1)
        expect(await broker.complete([{ id, token: claimed.token, result: '1' }], t0 + 2)).toEqual(['stale'])
        expect(await broker.release([{ id, token: claimed.token }], t0 + 2)).toEqual(['stale'])
        expect((await record(id)).status).toBe('queued')
      })
    })

    describe('cancel', () => {
      it('cancels a queued task, and claim skips its tombstone', async () => {
        const [a, b, c] = await enqueue([{}, {}, {}])
        const cancelled = await broker.cancel(b!, t0 + 5)
        expect(cancelled).toMatchObject({ id: b, status: 'cancelled', finishedAt: t0 + 5 })
        expect((await record(b!)).status).toBe('cancelled')
        expect((await claim(10, t0 + 6)).map((t) => t.id)).toEqual([a, c])
        expect((await broker.counts()).ready.normal).toBe(0)
      })

      it('skips tombstones without counting them against max', async () => {
        const ids = await enqueue([{}, {}, {}, {}])
        await broker.cancel(ids[0]!, t0)
        await broker.cancel(ids[1]!, t0)
        expect((await claim(2, t0)).map((t) => t.id)).toEqual([ids[2], ids[3]])
      })

      it('cancels a pending task so that it never becomes due', async () => {
        const id = await enqueueOne({ runAt: t0 + 1000 })
        expect(await broker.cancel(id, t0 + 1)).toMatchObject({ id, status: 'cancelled', finishedAt: t0 + 1 })
        expect(await broker.counts()).toMatchObject({ delayed: 0 })
        expect(await broker.claim('worker-1', 10, LEASE, t0 + 5000)).toEqual({ tasks: [], nextWakeAt: null })
        expect((await record(id)).status).toBe('cancelled')
      })

      it('cancels a retry that is waiting out its backoff', async () => {
        const id = await enqueueOne()
        const claimed = await claimOne(t0)
        await broker.fail(
          [{ id, token: claimed.token, error: BOOM, outcome: 'error', retryAt: t0 + 1000 }],
          t0 + 1,
        )
        expect((await broker.cancel(id, t0 + 2)).status).toBe('cancelled')
        expect(await claim(10, t0 + 1000)).toEqual([])
      })

      it('refuses to cancel a processing task with TASK_PROCESSING', async () => {
        const id = await enqueueOne()
        await claimOne(t0)
        await expectCode(broker.cancel(id, t0 + 1), 'TASK_PROCESSING')
        expect((await record(id)).status).toBe('processing')
      })

      it('refuses to cancel a finished task with TASK_FINISHED', async () => {
        const [done, cancelled] = await enqueue([{}, {}])
        await broker.cancel(cancelled!, t0)
        const claimed = await claimOne(t0)
        await broker.complete([{ id: done!, token: claimed.token, result: '1' }], t0 + 1)
        const dead = await killOne(t0 + 2)
        for (const id of [done!, cancelled!, dead])
          await expectCode(broker.cancel(id, t0 + 3), 'TASK_FINISHED')
        expect((await record(dead)).status).toBe('failed')
      })

      it('answers NOT_FOUND for an unknown id', async () => {
        await expectCode(broker.cancel('no-such-task', t0), 'NOT_FOUND')
      })
    })

    describe('idempotency', () => {
      it('answers the existing task for a key repeated within its TTL', async () => {
        const first = newTask({ idempotencyKey: 'order-1', createdAt: t0 })
        await broker.enqueue([first], t0)
        const repeat = newTask({ idempotencyKey: 'order-1', createdAt: t0 + 10 })
        expect(await broker.enqueue([repeat], t0 + 10)).toEqual([
          { id: first.id, status: 'queued', createdAt: t0, deduplicated: true },
        ])
        expect(await broker.get(repeat.id)).toBeNull()
        expect(await claim(10, t0 + 20)).toHaveLength(1)
      })

      it("reports the existing task's current status", async () => {
        const id = await enqueueOne({ idempotencyKey: 'order-1' })
        const claimed = await claimOne(t0)
        expect((await broker.enqueue([newTask({ idempotencyKey: 'order-1' })], t0 + 1))[0]).toMatchObject({
          id,
          status: 'processing',
          deduplicated: true,
        })
        await broker.complete([{ id, token: claimed.token, result: '1' }], t0 + 2)
        expect((await broker.enqueue([newTask({ idempotencyKey: 'order-1' })], t0 + 3))[0]).toMatchObject({
          id,
          status: 'completed',
          deduplicated: true,
        })
      })

      it('deduplicates within one batch', async () => {
        const tasks = [
          newTask({ idempotencyKey: 'k' }),
          newTask({ idempotencyKey: 'other' }),
          newTask({ idempotencyKey: 'k' }),
        ]
        const results = await broker.enqueue(tasks, t0)
        expect(results.map((r) => [r.id, r.deduplicated])).toEqual([
          [tasks[0]!.id, false],
          [tasks[1]!.id, false],
          [tasks[0]!.id, true],
        ])
        expect(await claim(10, t0)).toHaveLength(2)
      })

      it('keeps keys of different tenants apart', async () => {
        const results = await broker.enqueue(
          [
            newTask({ tenantId: 'acme', idempotencyKey: 'k' }),
            newTask({ tenantId: 'globex', idempotencyKey: 'k' }),
          ],
          t0,
        )
        expect(results.map((r) => r.deduplicated)).toEqual([false, false])
        expect(results[0]!.id).not.toBe(results[1]!.id)
      })

      it('does not confuse tenant and key boundaries', async () => {
        const results = await broker.enqueue(
          [
            newTask({ tenantId: 'a:b', idempotencyKey: 'c' }),
            newTask({ tenantId: 'a', idempotencyKey: 'b:c' }),
          ],
          t0,
        )
        expect(results.map((r) => r.deduplicated)).toEqual([false, false])
      })

      it('creates a new task once the key has outlived its TTL', async () => {
        const first = await enqueueOne({ idempotencyKey: 'k', idempotencyTtlMs: 1000 })
        const within = await broker.enqueue(
          [newTask({ idempotencyKey: 'k', idempotencyTtlMs: 1000 })],
          t0 + 999,
        )
        expect(within[0]).toMatchObject({ id: first, deduplicated: true })
        const fresh = newTask({ idempotencyKey: 'k', idempotencyTtlMs: 1000 })
        const after = await broker.enqueue([fresh], t0 + 1000)
        expect(after).toEqual([{ id: fresh.id, status: 'queued', createdAt: t0, deduplicated: false }])
        // The new task now holds the key.
        const again = await broker.enqueue([newTask({ idempotencyKey: 'k' })], t0 + 1500)
        expect(again[0]).toMatchObject({ id: fresh.id, deduplicated: true })
      })

      it('never deduplicates tasks without a key', async () => {
        const results = await broker.enqueue([newTask(), newTask()], t0)
        expect(results.map((r) => r.deduplicated)).toEqual([false, false])
        expect(await claim(10, t0)).toHaveLength(2)
      })
    })

    describe('dead-letter queue', () => {
      it('lists dead tasks most recent first, with paging and a total', async () => {
        const ids: string[] = []
        for (let i = 0; i < 5; i++) ids.push(await killOne(t0 + i * 100))
        const newestFirst = [...ids].reverse()
        const all = await broker.listDead(10, 0)
        expect(all.total).toBe(5)
        expect(all.items.map((t) => t.id)).toEqual(newestFirst)
        expect(all.items[0]).toMatchObject({ status: 'failed', finishedAt: t0 + 400, error: BOOM })
        expect(all.items[0]!.history).toHaveLength(1)
        const page = await broker.listDead(2, 1)
        expect(page).toEqual({ total: 5, items: expect.any(Array) })
        expect(page.items.map((t) => t.id)).toEqual(newestFirst.slice(1, 3))
        expect((await broker.listDead(10, 4)).items.map((t) => t.id)).toEqual([ids[0]])
        expect(await broker.listDead(10, 5)).toEqual({ items: [], total: 5 })
      })

      it('answers an empty page when nothing is dead', async () => {
        expect(await broker.listDead(10, 0)).toEqual({ items: [], total: 0 })
      })

      it('retries a dead task with a fresh attempt budget and keeps its history', async () => {
        const id = await enqueueOne({ maxRetries: 0 })
        await claimOne(t0, 'worker-1', 1000)
        await claim(1, t0 + 1000)
        expect((await record(id)).status).toBe('failed')
        expect(await broker.retryDead([id], t0 + 2000)).toBe(1)
        const revived = await record(id)
        expect(revived).toMatchObject({ status: 'queued', attempt: 0 })
        expect(revived.history).toHaveLength(1)
        expect(await broker.counts()).toMatchObject({ dead: 0, ready: { normal: 1 } })
        expect(await broker.listDead(10, 0)).toEqual({ items: [], total: 0 })
        // maxRetries 0 allows one attempt again.
        const claimed = await claimOne(t0 + 2000, 'worker-2', 1000)
        expect(claimed).toMatchObject({ id, attempt: 1 })
        expect(await broker.complete([{ id, token: claimed.token, result: '1' }], t0 + 2001)).toEqual(['ok'])
      })

      it('retries only ids that are in the dead-letter queue', async () => {
        const dead = await killOne(t0)
        const queued = await enqueueOne({}, t0 + 1)
        expect(await broker.retryDead([queued, 'no-such-task', dead, dead], t0 + 2)).toBe(1)
        expect(await broker.retryDead([dead], t0 + 3)).toBe(0)
        expect((await record(queued)).status).toBe('queued')
      })

      it('queues retried tasks at the tail of their level', async () => {
        const dead = await killOne(t0)
        const waiting = await enqueueOne({}, t0 + 1)
        await broker.retryDead([dead], t0 + 2)
        expect((await claim(10, t0 + 3)).map((t) => t.id)).toEqual([waiting, dead])
      })

      it('retryAllDead moves the oldest dead tasks first, up to max', async () => {
        const ids: string[] = []
        for (let i = 0; i < 4; i++) ids.push(await killOne(t0 + i * 10))
        expect(await broker.retryAllDead(3, t0 + 100)).toEqual(ids.slice(0, 3))
        expect((await broker.listDead(10, 0)).items.map((t) => t.id)).toEqual([ids[3]])
        expect((await claim(10, t0 + 101)).map((t) => t.id)).toEqual(ids.slice(0, 3))
        expect(await broker.retryAllDead(10, t0 + 200)).toEqual([ids[3]])
        expect(await broker.retryAllDead(10, t0 + 300)).toEqual([])
      })
    })

    describe('counts', () => {
      it('counts ready tasks per priority, delayed, processing and dead', async () => {
        expect(await broker.counts()).toEqual({
          ready: { critical: 0, high: 0, normal: 0, low: 0 },
          delayed: 0,
          processing: 0,
          dead: 0,
        })
        await enqueue([
          { priority: 'critical' },
          { priority: 'critical' },
          { priority: 'critical' },
          { priority: 'high' },
          { priority: 'low' },
          { priority: 'low' },
          { runAt: t0 + 1000 },
          { runAt: t0 + 2000, priority: 'low' },
        ])
        const [first] = await claim(2, t0)
        await broker.fail(
          [{ id: first!.id, token: first!.token, error: BOOM, outcome: 'error', retryAt: null }],
          t0,
        )
        expect(await broker.counts()).toEqual({
          ready: { critical: 1, high: 1, normal: 0, low: 2 },
          delayed: 2,
          processing: 1,
          dead: 1,
        })
        expect((await broker.counts({ oldestReady: true })).oldestReadyAt).toEqual({
          critical: t0,
          high: t0,
          normal: null,
          low: t0,
        })
      })

      it('answers when the oldest ready task of each level became claimable, past cancelled ones', async () => {
        const [a, b] = await enqueue([{ runAt: t0 - 500 }, { runAt: t0 - 200 }, { runAt: t0 - 100 }])
        await enqueueOne({ runAt: t0 + 1000, priority: 'high' })
        expect((await broker.counts({ oldestReady: true })).oldestReadyAt).toEqual({
          critical: null,
          high: null,
          normal: t0 - 500,
          low: null,
        })
        await broker.cancel(a!, t0)
        expect((await broker.counts({ oldestReady: true })).oldestReadyAt?.normal).toBe(t0 - 200)
        const [first] = await claim(1, t0 + 1000) // promotes the delayed high task, then takes it
        expect(first!.id).not.toBe(b)
        expect((await broker.counts({ oldestReady: true })).oldestReadyAt).toMatchObject({
          high: null,
          normal: t0 - 200,
        })
      })

      it('counts each event once, by tenant, task name and detail', async () => {
        const [ok, flaky, dead, gone] = await enqueue([
          { priority: 'high' },
          { maxRetries: 1 },
          { maxRetries: 0, name: 'resize', tenantId: 'tenant-b' },
          { runAt: t0 + 60_000 },
        ])
        await broker.enqueue([newTask({ id: ok! })], t0) // a re-sent id adds nothing
        await broker.cancel(gone!, t0)
        const claimed = await claim(3, t0)
        const token = (id: string) => claimed.find((c) => c.id === id)!.token
        await broker.complete([{ id: ok!, token: token(ok!), result: '1' }], t0)
        await broker.fail(
          [
            { id: flaky!, token: token(flaky!), error: BOOM, outcome: 'error', retryAt: t0 },
            {
              id: dead!,
              token: token(dead!),
              error: { name: 'TypeError', message: 'x' },
              outcome: 'error',
              retryAt: null,
            },
          ],
          t0,
        )
        // The flaky task's second attempt is claimed and its lease expires: dead-lettered.
        await claim(1, t0 + 1)
        await claim(1, t0 + 2 + LEASE)
        expect(await broker.retryDead([dead!], t0 + 3 + LEASE)).toBe(1)
        const counts = (await broker.eventCounts())
          .map((c) => `${c.event} ${c.tenantId} ${c.taskName} ${c.detail} ${c.count}`)
          .sort()
        expect(counts).toEqual(
          [
            'attempt_failed tenant-a send-email Error 1',
            'attempt_failed tenant-b resize TypeError 1',
            'cancelled tenant-a send-email  1',
            'completed tenant-a send-email  1',
            'dead_letter_retried tenant-b resize  1',
            'dead_lettered tenant-a send-email LeaseExpiredError 1',
            'dead_lettered tenant-b resize TypeError 1',
            'lease_expired tenant-a send-email  1',
            'retried tenant-a send-email  1',
            'submitted tenant-a send-email high 1',
            'submitted tenant-a send-email normal 2',
            'submitted tenant-b resize normal 1',
          ].sort(),
        )
      })
    })

    describe('waitForWork', () => {
      it('wakes a waiter when a task is enqueued', async () => {
        const abort = new AbortController()
        const waiting = track(broker.waitForWork(20_000, abort.signal))
        try {
          await pause(30)
          expect(waiting.settled).toBe(false)
          await enqueueOne()
          expect(await settlesWithin(waiting.promise, 5000)).toBe(true)
        } finally {
          abort.abort()
        }
      })

      it('wakes every waiter', async () => {
        const abort = new AbortController()
        const waiters = [1, 2, 3].map(() => broker.waitForWork(20_000, abort.signal))
        try {
          await pause(30)
          await enqueueOne()
          expect(await settlesWithin(Promise.all(waiters), 5000)).toBe(true)
        } finally {
          abort.abort()
        }
      })

      it('wakes a waiter when a lease is released', async () => {
        const id = await enqueueOne()
        const claimed = await claimOne(t0)
        const abort = new AbortController()
        const waiting = track(broker.waitForWork(20_000, abort.signal))
        try {
          await pause(30)
          expect(waiting.settled).toBe(false)
          await broker.release([{ id, token: claimed.token }], t0 + 1)
          expect(await settlesWithin(waiting.promise, 5000)).toBe(true)
        } finally {
          abort.abort()
        }
      })

      it('wakes a waiter when dead tasks are retried', async () => {
        const dead = await killOne(t0)
        const abort = new AbortController()
        const waiting = track(broker.waitForWork(20_000, abort.signal))
        try {
          await pause(30)
          expect(waiting.settled).toBe(false)
          await broker.retryDead([dead], t0 + 1)
          expect(await settlesWithin(waiting.promise, 5000)).toBe(true)
        } finally {
          abort.abort()
        }
      })

      it('resolves at once when a task is already ready', async () => {
        await enqueueOne()
        const abort = new AbortController()
        try {
          expect(await settlesWithin(broker.waitForWork(20_000, abort.signal), 5000)).toBe(true)
        } finally {
          abort.abort()
        }
      })

      it('resolves after its timeout when no work comes', async () => {
        const started = Date.now()
        await broker.waitForWork(50, new AbortController().signal)
        expect(Date.now() - started).toBeGreaterThanOrEqual(40)
      })

      it('resolves when its signal aborts', async () => {
        const abort = new AbortController()
        const waiting = track(broker.waitForWork(20_000, abort.signal))
        await pause(10)
        expect(waiting.settled).toBe(false)
        abort.abort()
        expect(await settlesWithin(waiting.promise, 5000)).toBe(true)
      })

      it('resolves at once when its signal has already aborted', async () => {
        const abort = new AbortController()
        abort.abort()
        expect(await settlesWithin(broker.waitForWork(20_000, abort.signal), 5000)).toBe(true)
      })
    })

    describe('at volume', () => {
      it('drains a 1,000-task batch in priority order, first in first out within each level', async () => {
        const tasks = Array.from({ length: 1000 }, (_, i) =>
          newTask({ priority: PRIORITIES[i % 4] as Priority }),
        )
        const results = await broker.enqueue(tasks, t0)
        expect(
          results.every((r, i) => r.id === tasks[i]!.id && r.status === 'queued' && !r.deduplicated),
        ).toBe(true)
        const rank = (p: Priority) => PRIORITIES.indexOf(p)
        const expected = [...tasks].sort((a, b) => rank(a.priority) - rank(b.priority)).map((t) => t.id)

        const claimed: ClaimedTask[] = []
        for (let i = 0; i < 10; i++) claimed.push(...(await claim(100, t0 + 1 + i)))
        expect(claimed.map((c) => c.id)).toEqual(expected)
        expect(await claim(100, t0 + 20)).toEqual([])
        expect(new Set(claimed.map((c) => c.token)).size).toBe(1000)

        const outcomes = await broker.complete(
          claimed.map((c) => ({ id: c.id, token: c.token, result: c.id })),
          t0 + 30,
        )
        expect(outcomes.every((o) => o === 'ok')).toBe(true)
        expect(await broker.counts()).toEqual({
          ready: { critical: 0, high: 0, normal: 0, low: 0 },
          delayed: 0,
          processing: 0,
          dead: 0,
        })
      })
    })

    describe('fleet: task lock keys', () => {
      it('never leases two tasks with one lock key at once, and waiting spends no attempt', async () => {
        const [a, b, c] = await enqueue([{ lockKey: 'cust-1' }, { lockKey: 'cust-1' }, { lockKey: 'cust-2' }])
        const first = await claim(10, t0)
        expect(first.map((t) => t.id)).toEqual([a, c])
        expect(first[0]).toMatchObject({ lockKey: 'cust-1' })
        expect(await claim(10, t0 + 1)).toEqual([])
        expect(await record(b!)).toMatchObject({ status: 'queued', attempt: 0, lockKey: 'cust-1' })
        expect(await broker.complete([{ id: a!, token: first[0]!.token, result: '1' }], t0 + 2)).toEqual([
          'ok',
        ])
        const next = await claimOne(t0 + 3)
        expect(next).toMatchObject({ id: b, attempt: 1, lockKey: 'cust-1' })
      })

      it('keeps waiters in order and lets the next one in after a failure, a release or a deferral', async () => {
        const [a, b, c, d] = await enqueue([
          { lockKey: 'k' },
          { lockKey: 'k' },
          { lockKey: 'k' },
          { lockKey: 'k' },
        ])
        const ca = only(await claim(10, t0))
        expect(ca.id).toBe(a)
        await broker.fail(
          [{ id: a!, token: ca.token, error: BOOM, outcome: 'error', retryAt: t0 + 60_000 }],
          t0 + 1,
        )
        const cb = only(await claim(10, t0 + 2))
        expect(cb.id).toBe(b)
        await broker.release([{ id: b!, token: cb.token }], t0 + 3)
        const again = only(await claim(10, t0 + 4))
        expect(again.id).toBe(b) // a released task goes back first in line
        await broker.defer([{ id: b!, token: again.token }], t0 + 60_000, t0 + 5)
        expect(only(await claim(10, t0 + 6)).id).toBe(c)
        expect(await claim(10, t0 + 7)).toEqual([])
        expect(await record(d!)).toMatchObject({ status: 'queued', attempt: 0 })
      })

      it("frees the key when the holder's lease expires", async () => {
        const [a, b] = await enqueue([{ lockKey: 'k' }, { lockKey: 'k' }])
        expect((await claimOne(t0, 'worker-1', 1000)).id).toBe(a)
        expect(await claim(10, t0 + 500)).toEqual([])
        const after = await claim(10, t0 + 1001, 'worker-2')
        expect(after.map((t) => t.id)).toEqual([a]) // the expired task first; b still waits for it
        expect(await claim(10, t0 + 1002)).toEqual([])
        await broker.complete([{ id: a!, token: after[0]!.token, result: '1' }], t0 + 1003)
        expect((await claimOne(t0 + 1004)).id).toBe(b)
      })

      it('lets the next waiter in when a let-in waiter was cancelled', async () => {
        const [a, b, c] = await enqueue([{ lockKey: 'k' }, { lockKey: 'k' }, { lockKey: 'k' }])
        const ca = await claimOne(t0)
        expect(await claim(10, t0 + 1)).toEqual([]) // b and c wait
        await broker.cancel(b!, t0 + 2)
        await broker.complete([{ id: a!, token: ca.token, result: '1' }], t0 + 3)
        expect((await claimOne(t0 + 4)).id).toBe(c)
      })

      it('keeps the lock key on the record and answers no lock key for plain tasks', async () => {
        const [a, b] = await enqueue([{ lockKey: 'x' }, {}])
        expect((await record(a!)).lockKey).toBe('x')
        expect((await record(b!)).lockKey).toBeUndefined()
        const claimed = await claim(10, t0)
        expect(claimed.find((t) => t.id === b)!.lockKey).toBeUndefined()
      })
    })

    describe('fleet: defer', () => {
      it('makes the task pending until runAt without counting the attempt, and the old token stale', async () => {
        const id = await enqueueOne()
        const claimed = await claimOne(t0)
        expect(await broker.defer([{ id, token: claimed.token }], t0 + 5000, t0 + 1)).toEqual(['ok'])
        expect(await record(id)).toMatchObject({
          status: 'pending',
          attempt: 0,
          runAt: t0 + 5000,
          history: [],
        })
        expect(await broker.defer([{ id, token: claimed.token }], t0 + 5000, t0 + 2)).toEqual(['stale'])
        expect(await claim(1, t0 + 4999)).toEqual([])
        expect(await claimOne(t0 + 5000)).toMatchObject({ id, attempt: 1 })
      })

      it('keeps what deferred the task and until when, on the record', async () => {
        const id = await enqueueOne()
        const claimed = await claimOne(t0)
        expect(await record(id)).toMatchObject({ deferredBy: undefined, deferredUntil: undefined })
        await broker.defer([{ id, token: claimed.token }], t0 + 5000, t0 + 1, 'smtp@acme')
        expect(await record(id)).toMatchObject({
          status: 'pending',
          runAt: t0 + 5000,
          deferredBy: 'smtp@acme',
          deferredUntil: t0 + 5000,
        })
      })
    })

    describe('fleet: distributed locks', () => {
      it('grants a free key, refuses a held one until it expires, and fencing tokens only grow', async () => {
        const g1 = await broker.acquireLock('res', 1000, t0)
        expect(g1).toMatchObject({ acquired: true, expiresAt: t0 + 1000 })
        expect(await broker.acquireLock('res', 1000, t0 + 500)).toEqual({
          acquired: false,
          heldUntil: t0 + 1000,
        })
        const g2 = await broker.acquireLock('res', 1000, t0 + 1000)
        if (!g1.acquired || !g2.acquired) throw new Error('expected both grants')
        expect(g2.token).toBeGreaterThan(g1.token)
        expect(await broker.releaseLock('res', g1.token, t0 + 1001)).toBe(false)
        expect(await broker.extendLock('res', g1.token, 1000, t0 + 1001)).toBe(false)
        expect(await broker.releaseLock('res', g2.token, t0 + 1001)).toBe(true)
        const g3 = await broker.acquireLock('res', 1000, t0 + 1002)
        if (!g3.acquired) throw new Error('expected the released lock to be free')
        expect(g3.token).toBeGreaterThan(g2.token)
        expect((await broker.acquireLock('other', 1000, t0 + 1002)).acquired).toBe(true)
      })

      it('extends a live hold and loses an expired one', async () => {
        const g = await broker.acquireLock('res', 1000, t0)
        if (!g.acquired) throw new Error('expected the lock')
        expect(await broker.extendLock('res', g.token, 5000, t0 + 900)).toBe(true)
        expect((await broker.acquireLock('res', 1000, t0 + 2000)).acquired).toBe(false)
        expect(await broker.releaseLock('res', g.token, t0 + 5901)).toBe(false)
      })
    })

    describe('fleet: circuit breakers', () => {
      const settings = { failureThreshold: 3, resetMs: 10_000, trialMs: 5000 }
      const call = (
        op: 'acquire' | 'success' | 'failure' | 'release' | 'state' | 'reset',
        now: number,
        trialUntil?: number,
      ) => broker.breaker({ name: 'smtp', op, settings, trialUntil }, now)

      it('opens after the threshold, lets one trial through when due, and closes on its success', async () => {
        expect(await call('acquire', t0)).toMatchObject({ state: 'closed', allowed: true, trial: false })
        expect(await call('failure', t0)).toMatchObject({ state: 'closed', failures: 1, opened: false })
        await call('failure', t0 + 1)
        expect(await call('failure', t0 + 2)).toMatchObject({
          state: 'open',
          opened: true,
          openUntil: t0 + 10_002,
        })
        expect(await call('acquire', t0 + 3)).toMatchObject({ allowed: false, openUntil: t0 + 10_002 })
        expect(await call('acquire', t0 + 10_002)).toMatchObject({
          state: 'half-open',
          allowed: true,
          trial: true,
        })
        expect(await call('acquire', t0 + 10_003)).toMatchObject({ allowed: false, openUntil: t0 + 15_002 })
        expect(await call('success', t0 + 10_004)).toMatchObject({
          state: 'closed',
          failures: 0,
          openUntil: null,
        })
        expect(await call('acquire', t0 + 10_005)).toMatchObject({ allowed: true, trial: false })
      })

      it('opens again at once when the trial fails, and gives a lapsed trial to the next caller', async () => {
        for (let i = 0; i < 3; i++) await call('failure', t0)
        expect(await call('acquire', t0 + 10_000)).toMatchObject({ trial: true })
        expect(await call('failure', t0 + 10_001)).toMatchObject({
          state: 'open',
          opened: true,
          openUntil: t0 + 20_001,
        })
        expect(await call('acquire', t0 + 20_001)).toMatchObject({ trial: true })
        expect(await call('acquire', t0 + 25_001)).toMatchObject({ trial: true }) // the first trial lapsed
        expect(await call('state', t0 + 25_002)).toMatchObject({ state: 'half-open' })
        expect(await call('reset', t0 + 25_003)).toMatchObject({ state: 'closed', failures: 0 })
      })

      it('release ends a trial without a verdict: still half-open, and the next caller tries at once', async () => {
        for (let i = 0; i < 3; i++) await call('failure', t0)
        const first = await call('acquire', t0 + 10_000)
        expect(first).toMatchObject({ trial: true, openUntil: t0 + 15_000 })
        expect(await call('acquire', t0 + 10_001)).toMatchObject({ allowed: false })
        expect(await call('release', t0 + 10_002, first.openUntil!)).toMatchObject({
          state: 'half-open',
          failures: 3,
        })
        const second = await call('acquire', t0 + 10_003)
        expect(second).toMatchObject({ allowed: true, trial: true })
        // A late release of the first trial (it lapsed; another task holds the trial now) is ignored.
        await call('release', t0 + 10_004, first.openUntil!)
        expect(await call('acquire', t0 + 10_005)).toMatchObject({ allowed: false })
        // On a closed breaker, release changes nothing.
        await call('success', t0 + 10_006)
        expect(await call('release', t0 + 10_007, second.openUntil!)).toMatchObject({
          state: 'closed',
          failures: 0,
        })
      })

      it('resets the failure count on a success', async () => {
        await call('failure', t0)
        await call('failure', t0)
        await call('success', t0)
        await call('failure', t0)
        expect(await call('failure', t0)).toMatchObject({ state: 'closed', failures: 2 })
      })
    })

    describe('fleet: worker heartbeats', () => {
      const beat = (id: string, at: number) => ({
        id,
        status: 'active' as const,
        lastHeartbeat: at,
        heartbeatMs: 1000,
        tasksInHand: 1,
        tasksProcessed: 7,
        hostname: 'host-a',
        pid: 42,
        concurrency: 10,
        startedAt: t0,
      })

      it('lists beats, reaps a worker silent for 3 intervals once, and expires its leases now', async () => {
        const [a, b] = await enqueue([{}, {}])
        const ca = await claimOne(t0, 'w-dead')
        const cb = await claimOne(t0, 'w-live')
        expect([ca.id, cb.id]).toEqual([a, b])
        await broker.heartbeat(beat('w-dead', t0), t0)
        await broker.heartbeat(beat('w-live', t0), t0)
        expect((await broker.listWorkers()).map((w) => w.id).sort()).toEqual(['w-dead', 'w-live'])
        await broker.heartbeat(beat('w-live', t0 + 2500), t0 + 2500)
        expect(await broker.reapWorkers(t0 + 2999)).toEqual([])
        expect(await broker.reapWorkers(t0 + 3001)).toEqual([{ id: 'w-dead', tasks: 1 }])
        expect(await broker.reapWorkers(t0 + 3002)).toEqual([]) // once only
        const dead = (await broker.listWorkers()).find((w) => w.id === 'w-dead')
        expect(dead).toMatchObject({ status: 'unhealthy', tasksProcessed: 7, hostname: 'host-a', pid: 42 })
        // Long before its 30 s lease, the dead worker's task is claimable again (the attempt counted).
        expect(await claimOne(t0 + 3003, 'w-live')).toMatchObject({ id: a, attempt: 2 })
        expect((await record(b!)).status).toBe('processing')
        await broker.removeWorker('w-live')
        expect((await broker.listWorkers()).map((w) => w.id)).toEqual(['w-dead'])
      })
    })

    outputConformance(() => broker)
  })
}

function only<T>(items: readonly T[]): T {
  expect(items).toHaveLength(1)
  return items[0]!
}

async function expectCode(promise: Promise<unknown>, code: TaskloomErrorCode): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (err: unknown) => err,
  )
  expect(error).toBeInstanceOf(TaskloomError)
  expect((error as TaskloomError).code).toBe(code)
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** True if `promise` settles within `ms`; clears its own timer either way. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms)
  })
  try {
    return await Promise.race([promise.then(() => true as const), timeout])
  } finally {
    clearTimeout(timer)
  }
}

function track(promise: Promise<void>): { promise: Promise<void>; settled: boolean } {
  const tracked = { promise, settled: false }
  promise.then(
    () => {
      tracked.settled = true
    },
    () => {
      tracked.settled = true
    },
  )
  return tracked
}

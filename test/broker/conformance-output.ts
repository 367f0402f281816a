/**
 * Conformance specs for task output and queue events (issue 17): `report` (progress and log lines,
 * fenced, bounded), `logs`, and the event stream (`listenEvents`, `lastEventId`, `readEvents`).
 * Registered by brokerConformance (./conformance.ts) for every broker.
 */
import { randomUUID } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import type { Broker, ClaimedTask, NewTask } from '../../src/broker/broker.js'
import type { QueueEventRecord } from '../../src/task/model.js'

const t0 = 2_000_000
const LEASE = 30_000
const BOOM = { name: 'Error', message: 'boom' }

export function outputConformance(current: () => Broker): void {
  const task = (overrides: Partial<NewTask> = {}): NewTask => ({
    id: randomUUID(),
    name: 'resize',
    tenantId: 'tenant-a',
    payload: '{}',
    priority: 'normal',
    runAt: t0,
    timeoutMs: 60_000,
    maxRetries: 1,
    createdAt: t0,
    idempotencyTtlMs: 0,
    ...overrides,
  })

  async function running(overrides: Partial<NewTask> = {}, now = t0): Promise<ClaimedTask> {
    const broker = current()
    const [added] = await broker.enqueue([task(overrides)], now)
    const { tasks } = await broker.claim('w1', 1, LEASE, now)
    expect(tasks.map((t) => t.id)).toEqual([added!.id])
    return tasks[0]!
  }

  describe('task output: progress and logs', () => {
    it('records the latest progress and shows it with the task', async () => {
      const broker = current()
      const t = await running()
      const outcomes = await broker.report(
        [
          { id: t.id, token: t.token, progress: '10' },
          { id: t.id, token: t.token, progress: '{"step":"resize","done":3}' },
        ],
        1000,
        t0 + 1,
      )
      expect(outcomes).toEqual(['ok', 'ok'])
      expect((await broker.get(t.id))?.progress).toBe('{"step":"resize","done":3}')
    })

    it('keeps log lines in order, numbered, with the attempt that wrote them', async () => {
      const broker = current()
      const t = await running()
      await broker.report(
        [
          { id: t.id, token: t.token, log: 'first' },
          { id: t.id, token: t.token, log: 'sécond "quoted" \\ line' },
        ],
        1000,
        t0 + 5,
      )
      expect(await broker.logs(t.id)).toEqual([
        { token: t.token, seq: 1, at: t0 + 5, line: 'first' },
        { token: t.token, seq: 2, at: t0 + 5, line: 'sécond "quoted" \\ line' },
      ])
    })

    it('keeps only the last maxLogLines lines of a task', async () => {
      const broker = current()
      const t = await running()
      const items = Array.from({ length: 25 }, (_, i) => ({ id: t.id, token: t.token, log: `line ${i + 1}` }))
      await broker.report(items, 10, t0 + 1)
      const lines = await broker.logs(t.id)
      expect(lines?.map((l) => l.line)).toEqual(Array.from({ length: 10 }, (_, i) => `line ${i + 16}`))
      expect(lines?.map((l) => l.seq)).toEqual(Array.from({ length: 10 }, (_, i) => i + 16))
    })

    it('refuses output from an attempt that lost its lease, like a late completion', async () => {
      const broker = current()
      const first = await running()
      await broker.report([{ id: first.id, token: first.token, log: 'from attempt 1' }], 1000, t0 + 1)
      // The lease expires; another worker takes the task.
      const { tasks } = await broker.claim('w2', 1, LEASE, t0 + LEASE + 1)
      const second = tasks[0]!
      expect(second.token).toBeGreaterThan(first.token)
      const late = await broker.report(
        [
          { id: first.id, token: first.token, progress: '99' },
          { id: first.id, token: first.token, log: 'late' },
          { id: second.id, token: second.token, log: 'from attempt 2' },
        ],
        1000,
        t0 + LEASE + 2,
      )
      expect(late).toEqual(['stale', 'stale', 'ok'])
      expect((await broker.get(first.id))?.progress).toBeUndefined()
      expect((await broker.logs(first.id))?.map((l) => [l.token, l.line])).toEqual([
        [first.token, 'from attempt 1'],
        [second.token, 'from attempt 2'],
      ])
    })

    it('refuses output once the task is no longer processing, and for unknown tasks', async () => {
      const broker = current()
      const t = await running()
      expect(await broker.complete([{ id: t.id, token: t.token, result: '1' }], t0 + 1)).toEqual(['ok'])
      const missing = randomUUID()
      expect(
        await broker.report(
          [
            { id: t.id, token: t.token, progress: '100' },
            { id: missing, token: 1, log: 'x' },
          ],
          1000,
          t0 + 2,
        ),
      ).toEqual(['stale', 'stale'])
      expect(await broker.logs(missing)).toBeNull()
      expect(await broker.logs(t.id)).toEqual([])
    })
  })

  describe('queue events', () => {
    async function listening(): Promise<string> {
      const broker = current()
      await broker.listenEvents(60_000, 1000)
      return broker.lastEventId()
    }

    const summary = (events: QueueEventRecord[]) => events.map((e) => [e.type, e.taskId, e.attempt])

    it('writes nothing while nobody listens', async () => {
      const broker = current()
      await broker.enqueue([task()], t0)
      expect(await broker.lastEventId()).toBe('0-0')
      expect(await broker.readEvents('0-0', 100, 0)).toEqual([])
    })

    it('records each change of a task once, in order, with typed fields', async () => {
      const broker = current()
      const from = await listening()
      const t = await running()
      await broker.report([{ id: t.id, token: t.token, progress: '50' }], 1000, t0 + 1)
      await broker.fail(
        [{ id: t.id, token: t.token, error: BOOM, outcome: 'error', retryAt: t0 + 10 }],
        t0 + 2,
      )
      const { tasks } = await broker.claim('w1', 1, LEASE, t0 + 10)
      await broker.fail(
        [{ id: t.id, token: tasks[0]!.token, error: BOOM, outcome: 'error', retryAt: null }],
        t0 + 11,
      )
      const events = await broker.readEvents(from, 100, 0)
      expect(summary(events)).toEqual([
        ['queued', t.id, 0],
        ['progress', t.id, 1],
        ['retrying', t.id, 1],
        ['dead', t.id, 2],
      ])
      expect(events[0]).toMatchObject({ name: 'resize', tenantId: 'tenant-a', at: t0, runAt: t0 })
      expect(events[1]).toMatchObject({ progress: '50', at: t0 + 1 })
      expect(events[2]).toMatchObject({ runAt: t0 + 10, error: BOOM })
      expect(events[3]).toMatchObject({ error: BOOM })
      const ids = events.map((e) => e.eventId)
      expect(new Set(ids).size).toBe(ids.length)
    })

    it('resumes after the last id seen, and answers completed, cancelled and revived tasks', async () => {
      const broker = current()
      const from = await listening()
      const t = await running()
      await broker.complete([{ id: t.id, token: t.token, result: '1' }], t0 + 1)
      const [first, ...rest] = await broker.readEvents(from, 1, 0)
      expect(rest).toEqual([])
      const [later] = await broker.enqueue([task({ runAt: t0 + 60_000 })], t0 + 2)
      await broker.cancel(later!.id, t0 + 3)
      const dead = await running({ maxRetries: 0 }, t0 + 4)
      await broker.fail(
        [{ id: dead.id, token: dead.token, error: BOOM, outcome: 'error', retryAt: null }],
        t0 + 5,
      )
      await broker.retryDead([dead.id], t0 + 6)
      const next = await broker.readEvents(first!.eventId, 100, 0)
      expect(summary([first!, ...next])).toEqual([
        ['queued', t.id, 0],
        ['completed', t.id, 1],
        ['queued', later!.id, 0],
        ['cancelled', later!.id, 0],
        ['queued', dead.id, 0],
        ['dead', dead.id, 1],
        ['queued', dead.id, 0],
      ])
      expect(next[1]).toMatchObject({ runAt: t0 + 60_000 })
    })

    it('reports a lease that expired as retrying, then dead once attempts are spent', async () => {
      const broker = current()
      const from = await listening()
      const t = await running({ maxRetries: 0 })
      await broker.claim('w2', 1, LEASE, t0 + LEASE + 1)
      const events = await broker.readEvents(from, 100, 0)
      expect(summary(events)).toEqual([
        ['queued', t.id, 0],
        ['dead', t.id, 1],
      ])
      expect(events[1]!.error?.name).toBe('LeaseExpiredError')
    })

    it('waits for the next event, and ends the wait when the signal aborts', async () => {
      const broker = current()
      const from = await listening()
      const reading = broker.readEvents(from, 10, 5000)
      await new Promise((r) => setTimeout(r, 50))
      const [added] = await broker.enqueue([task()], t0)
      const got = await reading
      expect(got.map((e) => e.taskId)).toEqual([added!.id])
      const controller = new AbortController()
      const started = Date.now()
      const idle = broker.readEvents(got[0]!.eventId, 10, 5000, controller.signal)
      setTimeout(() => controller.abort(), 50)
      expect(await idle).toEqual([])
      expect(Date.now() - started).toBeLessThan(4000)
    })

    it('keeps a bounded stream', async () => {
      const broker = current()
      await broker.listenEvents(60_000, 50)
      await broker.enqueue(
        Array.from({ length: 500 }, () => task()),
        t0,
      )
      const kept = await broker.readEvents('0-0', 1000, 0)
      // Redis trims approximately (whole radix-tree nodes of 100 entries): bounded, not exact.
      expect(kept.length).toBeGreaterThanOrEqual(50)
      expect(kept.length).toBeLessThan(500)
    })
  })
}

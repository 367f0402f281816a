/**
 * Conformance of the change feed (durable mode) for every broker: each state change after enqueue
 * is reported once, in order, with what the store needs to mirror it.
 */
import { randomUUID } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import type { Broker, BrokerOptions, NewTask } from '../../src/broker/broker.js'
import type { TaskChange } from '../../src/task/model.js'
import { uniqueName } from '../helpers/services.js'

const t0 = 1_000_000
const DAY = 86_400_000

export function changeFeedConformance(
  label: string,
  make: (queueName: string, options: BrokerOptions) => Broker,
  cleanup: (broker: Broker) => Promise<void> = (b) => b.close(),
): void {
  describe(`${label} change feed`, () => {
    const made: Broker[] = []
    afterEach(async () => {
      await Promise.all(made.splice(0).map(cleanup))
    })
    const broker = (options: BrokerOptions = { changeFeed: true }) => {
      const b = make(uniqueName('feed'), options)
      made.push(b)
      return b
    }
    const task = (overrides: Partial<NewTask> = {}): NewTask => ({
      id: randomUUID(),
      name: 'job',
      tenantId: 'acme',
      payload: '{}',
      priority: 'normal',
      runAt: t0,
      timeoutMs: 1000,
      maxRetries: 1,
      createdAt: t0,
      idempotencyTtlMs: DAY,
      ...overrides,
    })
    /** Everything on the feed now, acknowledged. */
    async function drain(b: Broker): Promise<TaskChange[]> {
      const out: TaskChange[] = []
      for (;;) {
        const batch = await b.readChanges('test', 100, 0, 60_000)
        if (batch.ids.length === 0) return out
        out.push(...batch.changes)
        await b.ackChanges(batch.ids)
      }
    }

    it('creates the epoch marker once, for exactly one caller', async () => {
      const b = broker()
      const answers = await Promise.all([
        b.ensureEpoch(t0, 1000),
        b.ensureEpoch(t0, 1000),
        b.ensureEpoch(t0, 1000),
      ])
      expect(answers.filter((a) => a.created)).toHaveLength(1)
      expect(await b.ensureEpoch(t0 + 1, 1000)).toEqual({ created: false })
      await b.markEpoch(t0 + 2, 'done', 1000)
      expect(await b.ensureEpoch(t0 + 10_000, 1000)).toEqual({ created: false })
    })

    it('hands the restore to another caller when the restorer stops renewing its lease', async () => {
      const b = broker()
      expect(await b.ensureEpoch(t0, 1000)).toEqual({ created: true })
      await b.markEpoch(t0 + 500, 'restoring', 1000) // renewed until t0 + 1500
      expect(await b.ensureEpoch(t0 + 1400, 1000)).toEqual({ created: false })
      // The restorer died: its lease lapses, and exactly one caller takes the restore over.
      const answers = await Promise.all([b.ensureEpoch(t0 + 1600, 1000), b.ensureEpoch(t0 + 1600, 1000)])
      expect(answers.filter((a) => a.created)).toHaveLength(1)
      await b.markEpoch(t0 + 1700, 'done', 1000)
      expect(await b.ensureEpoch(t0 + 100_000, 1000)).toEqual({ created: false })
    })

    it('issues tokens after the epoch that still fence correctly, however large', async () => {
      const b = broker()
      const t = task()
      await b.enqueue([t], t0)
      const before = (await b.claim('w', 1, 1000, t0)).tasks[0]!
      await b.ensureEpoch(Date.now(), 1000)
      await b.release([{ id: t.id, token: before.token }], t0)
      const after = (await b.claim('w', 1, 1000, t0)).tasks[0]!
      expect(after.token).toBeGreaterThan(before.token)
      expect(Number.isSafeInteger(after.token)).toBe(true)
      expect(await b.complete([{ id: t.id, token: after.token, result: '1' }], t0)).toEqual(['ok'])
    })

    it('keeps the attempts already spent when a task is re-enqueued by recovery', async () => {
      const b = broker()
      const t = task({ attempt: 2, maxRetries: 5 })
      await b.enqueue([t], t0)
      expect((await b.get(t.id))?.attempt).toBe(2)
      expect((await b.claim('w', 1, 1000, t0)).tasks[0]?.attempt).toBe(3)
    })

    it('is silent unless enabled', async () => {
      const b = broker({})
      await b.enqueue([task()], t0)
      await b.claim('w', 1, 1000, t0)
      expect(await drain(b)).toEqual([])
    })

    it('reports claims, completions and failures with what the store needs', async () => {
      const b = broker()
      const [a, c] = [task(), task()]
      await b.enqueue([a, c], t0)
      expect(await drain(b)).toEqual([]) // the store recorded the submit itself
      const claimed = (await b.claim('w1', 2, 1000, t0 + 1)).tasks
      await b.complete([{ id: a.id, token: claimed[0]!.token, result: '{"ok":true}' }], t0 + 2)
      const error = { name: 'Error', message: 'boom' }
      await b.fail(
        [{ id: c.id, token: claimed[1]!.token, error, outcome: 'error', retryAt: t0 + 500 }],
        t0 + 3,
      )
      const changes = await drain(b)
      expect(changes).toMatchObject([
        { id: a.id, status: 'processing', attempt: 1, at: t0 + 1, startedAt: t0 + 1, workerId: 'w1' },
        { id: c.id, status: 'processing', attempt: 1, at: t0 + 1, startedAt: t0 + 1, workerId: 'w1' },
        { id: a.id, status: 'completed', attempt: 1, at: t0 + 2, result: '{"ok":true}' },
        {
          id: c.id,
          status: 'pending',
          attempt: 1,
          at: t0 + 3,
          runAt: t0 + 500,
          error,
          failedAttempt: {
            attempt: 1,
            workerId: 'w1',
            startedAt: t0 + 1,
            endedAt: t0 + 3,
            outcome: 'error',
            error,
          },
        },
      ])
    })

    it('reports lease expiry, dead-lettering, DLQ retry, release and cancel', async () => {
      const b = broker()
      const [x, y, z] = [task({ maxRetries: 0 }), task(), task({ runAt: t0 + 10_000 })]
      await b.enqueue([x, y, z], t0)
      await b.claim('w1', 1, 100, t0) // x
      await b.claim('w2', 1, 1000, t0 + 200) // x's lease expired: dead (maxRetries 0); then y
      await drain(b)
      const y1 = (await b.get(y.id))!
      expect(y1.status).toBe('processing')
      const token = (await b.claim('w3', 1, 1000, t0 + 300)).tasks.length // nothing more is ready
      expect(token).toBe(0)
      await b.retryDead([x.id], t0 + 400)
      await b.cancel(z.id, t0 + 500)
      const changes = await drain(b)
      expect(changes).toMatchObject([
        { id: x.id, status: 'queued', attempt: 0, at: t0 + 400, revive: true },
        { id: z.id, status: 'cancelled', at: t0 + 500 },
      ])

      const b2 = broker()
      const w = task()
      await b2.enqueue([w], t0)
      const [claimed] = (await b2.claim('w1', 1, 100, t0)).tasks
      await b2.claim('w2', 0, 1000, t0 + 150) // reaps the expired lease, claims nothing
      const [again] = (await b2.claim('w2', 1, 1000, t0 + 160)).tasks
      await b2.release([{ id: w.id, token: again!.token }], t0 + 170)
      expect(claimed).toBeDefined()
      expect(await drain(b2)).toMatchObject([
        { id: w.id, status: 'processing', attempt: 1 },
        {
          id: w.id,
          status: 'queued',
          attempt: 1,
          at: t0 + 150,
          error: { name: 'LeaseExpiredError' },
          failedAttempt: { attempt: 1, workerId: 'w1', outcome: 'lease-expired' },
        },
        { id: w.id, status: 'processing', attempt: 2, workerId: 'w2' },
        { id: w.id, status: 'queued', attempt: 1, at: t0 + 170 },
      ])
    })

    it('writes one entry per call, hands it out once, and again when not acknowledged in time', async () => {
      const b = broker()
      await b.enqueue([task(), task(), task()], t0)
      await b.claim('w', 3, 1000, t0)
      const first = await b.readChanges('c1', 10, 0, 200)
      expect(first.ids).toHaveLength(1)
      expect(first.changes).toHaveLength(3)
      expect((await b.readChanges('c2', 10, 0, 200)).ids).toEqual([])
      await new Promise((r) => setTimeout(r, 250))
      const again = await b.readChanges('c2', 10, 0, 200)
      expect(again.ids).toEqual(first.ids)
      await b.ackChanges(again.ids)
      await new Promise((r) => setTimeout(r, 250))
      expect((await b.readChanges('c3', 10, 0, 200)).ids).toEqual([])
    })

    it('waits up to blockMs for a change, and wakes when one arrives', async () => {
      const b = broker()
      await b.enqueue([task()], t0)
      const started = Date.now()
      const reading = b.readChanges('c', 10, 2000, 60_000)
      await new Promise((r) => setTimeout(r, 50))
      await b.claim('w', 1, 1000, t0)
      const batch = await reading
      expect(batch.changes).toMatchObject([{ status: 'processing' }])
      expect(Date.now() - started).toBeLessThan(1500)
    })
  })
}

/**
 * Conformance of the change feed (durable mode) for every broker: each state change after enqueue
 * is reported once, in order, with what the store needs to mirror it.
 */
import { randomUUID } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import type { Broker, BrokerOptions, NewTask, RestoredTask } from '../../src/broker/broker.js'
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
      expect(await b.ensureEpoch(t0, 1000)).toEqual({ created: true, cause: 'missing', phase: 'rebasing' })
      await b.markEpoch(t0 + 500, 'restoring', 1000) // renewed until t0 + 1500
      expect(await b.ensureEpoch(t0 + 1400, 1000)).toEqual({ created: false })
      // The restorer died: its lease lapses, and exactly one caller takes the restore over.
      const answers = await Promise.all([b.ensureEpoch(t0 + 1600, 1000), b.ensureEpoch(t0 + 1600, 1000)])
      expect(answers.filter((a) => a.created)).toEqual([
        { created: true, cause: 'resume', phase: 'rebasing' },
      ])
      // A re-baser that failed gives its lease up: the next caller resumes at once.
      await b.markEpoch(t0 + 1610, 'abandoned', 1000)
      expect(await b.ensureEpoch(t0 + 1620, 1000)).toEqual({
        created: true,
        cause: 'resume',
        phase: 'rebasing',
      })
      // Past the first phase, a resumed re-base only fills in what the broker lacks.
      await b.markEpoch(t0 + 1650, 'serving', 1000)
      expect(await b.ensureEpoch(t0 + 2000, 1000)).toEqual({ created: false })
      expect(await b.ensureEpoch(t0 + 2700, 1000)).toEqual({
        created: true,
        cause: 'resume',
        phase: 'filling',
      })
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

    describe('fenced (durable mode)', () => {
      const fenced = () => broker({ changeFeed: true, fenced: true })
      /** A re-base as recovery runs it, with the block [base, ceiling]. */
      async function rebase(b: Broker, base: number, ceiling: number, now = t0): Promise<void> {
        const grant = await b.ensureEpoch(now, 10_000)
        expect(grant.created).toBe(true)
        await b.raiseFences(base, ceiling)
        await b.markEpoch(now, 'serving', 10_000)
        await b.markEpoch(now, 'done', 10_000)
      }

      it('serves no claim and no lock before the re-base, and tells its listener', async () => {
        const b = fenced()
        const reasons: string[] = []
        b.onBlocked((r) => reasons.push(r))
        await b.enqueue([task()], t0)
        const refused = await b.claim('w', 10, 1000, t0)
        expect(refused).toMatchObject({ tasks: [], blocked: 'epoch' })
        expect(refused.nextWakeAt).toBeGreaterThan(t0)
        expect(await b.acquireLock('k', 1000, t0)).toMatchObject({ acquired: false, blocked: 'epoch' })
        expect(reasons).toContain('epoch')
        // Nor does it answer reads: its copies may be behind the store, which the caller reads instead.
        const [held] = await b.heldIds(null, 10).then((p) => p.ids)
        expect(await b.get(held!)).toBeNull()
        // Claims stay refused while the first phase runs (the broker's copies may be behind the store).
        await b.ensureEpoch(t0, 10_000)
        await b.raiseFences(5000, 5000 + 1_000_000)
        expect((await b.claim('w', 10, 1000, t0)).blocked).toBe('epoch')
        await b.markEpoch(t0, 'serving', 10_000)
        expect((await b.get(held!))?.status).toBe('queued')
        const claimed = await b.claim('w', 10, 1000, t0)
        expect(claimed.tasks.map((c) => c.token)).toEqual([5001])
        expect(claimed.blocked).toBeUndefined()
      })

      it('issues tokens only up to the ceiling, and asks for the next block before it is reached', async () => {
        const b = fenced()
        const reasons: string[] = []
        b.onBlocked((r) => reasons.push(r))
        await rebase(b, 100, 103)
        await b.enqueue([task(), task(), task(), task(), task()], t0)
        const first = await b.claim('w', 10, 1000, t0)
        expect(first.tasks.map((c) => c.token)).toEqual([101, 102, 103])
        expect(reasons).toContain('fence') // far below the low-water mark
        expect(await b.claim('w', 10, 1000, t0)).toMatchObject({ tasks: [], blocked: 'fence' })
        expect(await b.acquireLock('k', 1000, t0)).toMatchObject({ acquired: false, blocked: 'fence' })
        // The next block: the counter goes on from where it was.
        await b.raiseFences(0, 1_000_000)
        expect((await b.claim('w', 10, 1000, t0)).tasks.map((c) => c.token)).toEqual([104, 105])
        const lock = await b.acquireLock('k', 1000, t0)
        expect(lock).toMatchObject({ acquired: true, token: 106 })
      })

      it('raises the counter to a later block, never below an earlier token', async () => {
        const b = fenced()
        await rebase(b, 1000, 2000)
        const t = task()
        await b.enqueue([t], t0)
        const before = (await b.claim('w', 1, 1000, t0)).tasks[0]!
        // A re-base with a later block: tokens continue above it, never below an earlier one.
        await b.markEpoch(t0, 'restoring', 10_000) // done already: changes nothing
        await b.raiseFences(50_000, 60_000)
        await b.release([{ id: t.id, token: before.token }], t0)
        const after = (await b.claim('w', 1, 1000, t0)).tasks[0]!
        expect(after.token).toBe(50_001)
      })

      it('draws lock tokens from the one counter, leaving no key per lock name', async () => {
        const b = fenced()
        await rebase(b, 10, 1_000_000)
        const tokens: number[] = []
        for (const key of ['a', 'b', 'c', 'a']) {
          const g = await b.acquireLock(key, 1000, t0)
          if (!g.acquired) throw new Error('not acquired')
          tokens.push(g.token)
          await b.releaseLock(key, g.token, t0)
        }
        expect(tokens).toEqual([11, 12, 13, 14])
        await b.enqueue([task()], t0)
        expect((await b.claim('w', 1, 1000, t0)).tasks[0]?.token).toBe(15)
      })

      it('lists every task it holds that is not finished, a page at a time', async () => {
        const b = fenced()
        await rebase(b, 0, 1_000_000)
        const [ready, delayed, leased, dead, done] = [
          task(),
          task({ runAt: t0 + 60_000 }),
          task(),
          task(),
          task(),
        ]
        await b.enqueue([leased, dead, done], t0)
        const claimed = (await b.claim('w', 3, 60_000, t0)).tasks
        await b.fail(
          [
            {
              id: dead.id,
              token: claimed[1]!.token,
              error: { name: 'E', message: 'x' },
              outcome: 'error',
              retryAt: null,
            },
          ],
          t0,
        )
        await b.complete([{ id: done.id, token: claimed[2]!.token, result: '1' }], t0)
        await b.enqueue([ready, delayed], t0)
        const seen: string[] = []
        let cursor: string | null = null
        do {
          const page = await b.heldIds(cursor, 2)
          expect(page.ids.length).toBeLessThanOrEqual(2)
          seen.push(...page.ids)
          cursor = page.nextCursor
        } while (cursor !== null)
        expect(new Set(seen)).toEqual(new Set([ready.id, delayed.id, leased.id, dead.id]))
      })

      it('restores from the store what it lacks: unfinished tasks with their attempts, and dead ones', async () => {
        const b = fenced()
        await rebase(b, 0, 1_000_000)
        const row = (
          t: NewTask,
          status: RestoredTask['status'],
          extra: Partial<RestoredTask> = {},
        ): RestoredTask => ({
          ...t,
          status,
          attempt: 0,
          updatedAt: t0,
          ...extra,
        })
        const [pending, queued, inFlight, dead, completed] = [
          task({ runAt: t0 + 60_000 }),
          // A cron tick's task: its key (the tick) is what the handler's ctx.schedule is read from.
          task({ idempotencyKey: 'schedule:nightly:1700000000000', idempotencyTtlMs: 0 }),
          task(),
          task(),
          task(),
        ]
        const error = { name: 'Boom', message: 'no' }
        const n = await b.restore(
          [
            row(pending, 'pending', { attempt: 1 }),
            row(queued, 'queued'),
            row(inFlight, 'processing', { attempt: 2 }),
            row(dead, 'failed', { attempt: 2, finishedAt: t0 - 5, error }),
            row(completed, 'completed', { finishedAt: t0 - 5, result: '1' }),
          ],
          t0,
        )
        expect(n).toBe(4)
        expect(await b.get(completed.id)).toBeNull()
        expect((await b.get(pending.id))?.status).toBe('pending')
        expect(await b.get(dead.id)).toMatchObject({ status: 'failed', error })
        expect((await b.listDead(10, 0)).items.map((r) => r.id)).toEqual([dead.id])
        const claimed = (await b.claim('w', 10, 1000, t0)).tasks
        expect(claimed.map((c) => [c.id, c.attempt, c.idempotencyKey])).toEqual([
          [queued.id, 1, 'schedule:nightly:1700000000000'],
          [inFlight.id, 3, undefined],
        ])
        // Restoring again changes nothing: the broker is not behind.
        expect(await b.restore([row(queued, 'queued')], t0)).toBe(0)
        expect(await b.retryDead([dead.id], t0)).toBe(1)
      })

      it('rewrites a task it holds when the store is ahead, so the old claim can no longer complete', async () => {
        const b = fenced()
        await rebase(b, 0, 1_000_000)
        const [done, retried, behind] = [task(), task(), task()]
        await b.enqueue([done, retried, behind], t0)
        const claimed = (await b.claim('w', 3, 60_000, t0)).tasks
        // The store has seen more than this (rolled back) broker: a completion, a failed attempt.
        const n = await b.restore(
          [
            {
              ...done,
              status: 'completed',
              attempt: 1,
              updatedAt: t0 + 5,
              finishedAt: t0 + 5,
              result: '"r"',
            },
            { ...retried, status: 'pending', attempt: 1, updatedAt: t0 + 5, runAt: t0 + 60_000 },
            { ...behind, status: 'queued', attempt: 0, updatedAt: t0 - 5 },
          ],
          t0 + 10,
        )
        expect(n).toBe(2)
        expect(await b.get(done.id)).toMatchObject({ status: 'completed', result: '"r"' })
        expect((await b.get(retried.id))?.status).toBe('pending')
        expect((await b.get(behind.id))?.status).toBe('processing')
        const outcome = await b.complete(
          claimed.map((c) => ({ id: c.id, token: c.token, result: '1' })),
          t0 + 20,
        )
        expect(outcome).toEqual(['stale', 'stale', 'ok'])
        expect((await b.get(done.id))?.result).toBe('"r"')
      })

      it('cancels a delayed task it holds when the store has it cancelled, though its runAt is later than the cancel', async () => {
        const b = fenced()
        await rebase(b, 0, 1_000_000)
        // Rolled back to before the cancel: the broker still has it delayed, due after the cancel.
        const delayed = task({ runAt: t0 + 5_000 })
        await b.enqueue([delayed], t0)
        const n = await b.restore(
          [{ ...delayed, status: 'cancelled', attempt: 0, updatedAt: t0 + 800 }],
          t0 + 8_000,
        )
        expect(n).toBe(1)
        expect((await b.get(delayed.id))?.status).toBe('cancelled')
        expect((await b.claim('w', 10, 1000, t0 + 10_000)).tasks).toEqual([])
      })
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

    it('leaves entries a consumer holds to it, and hands them out once it stops holding them', async () => {
      const b = broker()
      await b.enqueue([task()], t0)
      await b.claim('w', 1, 1000, t0)
      const first = await b.readChanges('c1', 10, 0, 300)
      expect(first.ids).toHaveLength(1)
      for (let i = 0; i < 3; i++) {
        await new Promise((r) => setTimeout(r, 150))
        await b.holdChanges('c1', first.ids)
        expect((await b.readChanges('c2', 10, 0, 300)).ids).toEqual([])
      }
      await new Promise((r) => setTimeout(r, 350))
      expect((await b.readChanges('c2', 10, 0, 300)).ids).toEqual(first.ids)
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

    it('carries progress and log lines of running attempts, in order, and nothing refused', async () => {
      // Unfenced here: what is tested is the feed, not the re-base.
      const b = broker({ changeFeed: true })
      const [added] = await b.enqueue([task()], t0)
      const [claimed] = (await b.claim('w', 1, 30_000, t0)).tasks
      await drain(b)
      const token = claimed!.token
      await b.report(
        [
          { id: added!.id, token, log: 'one' },
          { id: added!.id, token, progress: '{"half":true}' },
          { id: added!.id, token, log: 'two' },
          { id: added!.id, token: token + 1, log: 'refused' },
        ],
        1000,
        t0 + 1,
      )
      const batch = await b.readChanges('test', 100, 0, 60_000)
      expect(batch.changes).toEqual([])
      expect(batch.outputs).toEqual([
        { id: added!.id, token, at: t0 + 1, logs: [{ token, seq: 1, at: t0 + 1, line: 'one' }] },
        { id: added!.id, token, at: t0 + 1, progress: '{"half":true}' },
        { id: added!.id, token, at: t0 + 1, logs: [{ token, seq: 2, at: t0 + 1, line: 'two' }] },
      ])
      await b.ackChanges(batch.ids)
    })
  })
}

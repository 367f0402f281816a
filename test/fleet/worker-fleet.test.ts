import pg from 'pg'
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { Autoscaler, checkAutoscale, type ScaleDecision } from '../../src/fleet/autoscaler.js'
import { defineTask, NonRetryableError, TaskloomError } from '../../src/index.js'
import { internals } from '../../src/queue/internal.js'
import { waitForTask } from '../../src/testing.js'
import { backends, sleep, TEST_SCHEMA, trackWorker, until } from '../helpers/backends.js'
import { DATABASE_URL } from '../helpers/services.js'

function capture() {
  const lines: { level: string; msg: string; obj: object }[] = []
  const at = (level: string) => (obj: object, msg?: string) => lines.push({ level, msg: msg ?? '', obj })
  return { lines, logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') } }
}

for (const backend of backends) {
  describe.skipIf(!backend.available)(`worker fleet (${backend.label})`, () => {
    it('per-task breaker: opens after the threshold, defers without spending attempts, one trial closes it', async () => {
      const q = backend.queue()
      // A breaker of its own, named after the task (opt-in).
      const task = defineTask({ name: 'pay', input: z.object({ n: z.number() }), breaker: true })
      let healthy = false
      const runs: number[] = []
      const { lines, logger } = capture()
      const w = trackWorker({
        queue: q,
        concurrency: 1,
        logger,
        breakers: { pay: { failureThreshold: 2, resetMs: 600 } },
        breakerCacheMs: 0,
      }).handle(task, (input) => {
        runs.push(input.n)
        if (!healthy) throw new Error('gateway down')
        return input.n
      })
      const deferred: number[] = []
      w.on('task:deferred', ({ runAt }) => deferred.push(runAt))
      await w.start()
      const [a, b] = await q.submitMany(
        [1, 2].map((n) => ({ task, input: { n }, options: { maxRetries: 0 } })),
      )
      for (const t of [a!, b!]) expect((await waitForTask(q, t.id)).status).toBe('failed')
      const opened = await q.breaker('pay').state()
      expect(opened).toMatchObject({ name: 'pay', state: 'open', failures: 2 })
      expect(lines.some((l) => l.level === 'warn' && l.msg.includes('circuit breaker pay opened'))).toBe(true)
      const c = await q.submit(task, { n: 3 }, { maxRetries: 0 })
      await until(() => deferred.length > 0, 3000, 'a deferral')
      expect(runs).toEqual([1, 2]) // c did not run while open
      const waiting = await q.get(c.id)
      expect(waiting).toMatchObject({ status: 'pending', attempts: 0 })
      healthy = true
      expect(await waitForTask(q, c.id, { timeoutMs: 5000 })).toMatchObject({
        status: 'completed',
        attempts: 1,
      })
      expect(await q.breaker('pay').state()).toMatchObject({ state: 'closed', failures: 0 })
      expect(await q.breaker('pay').info()).toEqual(await q.breaker('pay').state())
      expect(w.stats().deferred).toBeGreaterThanOrEqual(1)
      await w.close()
    })

    it('named breakers: defineTask({ breaker }) shares one breaker; ctx.breaker(name).run guards a call', async () => {
      const q = backend.queue()
      const mailA = defineTask({ name: 'mail-a', input: z.object({}), breaker: 'smtp' })
      const mailB = defineTask({ name: 'mail-b', input: z.object({}), breaker: 'smtp' })
      const usesDep = defineTask({ name: 'report', input: z.object({}) })
      let depCalls = 0
      const w = trackWorker({
        queue: q,
        concurrency: 1,
        breakers: {
          smtp: { failureThreshold: 2, resetMs: 60_000 },
          billing: { failureThreshold: 1, resetMs: 60_000 },
        },
        breakerCacheMs: 0,
      })
        .handle(mailA, () => {
          throw new Error('smtp down')
        })
        .handle(mailB, () => 'sent')
        .handle(usesDep, async (_input, ctx) =>
          ctx.breaker('billing').run(() => {
            depCalls += 1
            throw new Error('billing down')
          }),
        )
      await w.start()
      const fails = await q.submitMany(
        [0, 1].map(() => ({ task: mailA, input: {}, options: { maxRetries: 0 } })),
      )
      for (const t of fails) await waitForTask(q, t.id)
      expect((await q.breaker('smtp').state()).state).toBe('open')
      expect((await q.breaker('mail-b').state()).state).toBe('closed') // no breaker of its own
      const b = await q.submit(mailB, {})
      await until(async () => (await q.get(b.id))?.status === 'pending', 3000, 'mail-b to be deferred')
      expect((await q.get(b.id))!.attempts).toBe(0)

      const r1 = await q.submit(usesDep, {}, { maxRetries: 3 })
      // First run: the call fails and opens `billing`; the retry finds it open and is deferred.
      await until(async () => (await q.breaker('billing').state()).state === 'open', 3000, 'billing to open')
      await until(async () => w.stats().deferred >= 2, 5000, 'the retry to be deferred')
      expect(depCalls).toBe(1)
      const info = await q.get(r1.id)
      expect(info).toMatchObject({ status: 'pending' })
      expect(info!.attempts).toBe(1) // the deferral did not spend the retry
      await q.breaker('smtp').reset()
      expect((await q.breaker('smtp').state()).state).toBe('closed')
      await w.close()
    })

    it('half-open lets exactly one trial run; the others wait for its outcome', async () => {
      const q = backend.queue()
      const task = defineTask({ name: 'trial', input: z.object({ n: z.number() }), breaker: true })
      const starts: { n: number; at: number }[] = []
      let inFlight = 0
      let maxInFlight = 0
      const w = trackWorker({
        queue: q,
        concurrency: 5,
        breakers: { trial: { failureThreshold: 1, resetMs: 300 } },
        breakerCacheMs: 0,
      }).handle(task, async (input) => {
        if (input.n === 0) throw new Error('first failure opens it')
        inFlight += 1
        maxInFlight = Math.max(maxInFlight, inFlight)
        starts.push({ n: input.n, at: Date.now() })
        await sleep(150)
        inFlight -= 1
        return input.n
      })
      await w.start()
      const opener = await q.submit(task, { n: 0 }, { maxRetries: 0 })
      await waitForTask(q, opener.id)
      expect((await q.breaker('trial').state()).state).toBe('open')
      const rest = await q.submitMany([1, 2, 3, 4].map((n) => ({ task, input: { n } })))
      for (const t of rest)
        expect(await waitForTask(q, t.id, { timeoutMs: 10_000 })).toMatchObject({
          status: 'completed',
          attempts: 1,
        })
      // The trial ran alone; the others started only after it succeeded and closed the breaker.
      const [trial, ...others] = [...starts].sort((a, b) => a.at - b.at)
      for (const o of others) expect(o.at).toBeGreaterThanOrEqual(trial!.at + 140)
      expect((await q.breaker('trial').state()).state).toBe('closed')
      await w.close()
    })

    it('a trial that ends without a verdict (NonRetryableError) frees the trial at once', async () => {
      const q = backend.queue()
      const task = defineTask({ name: 'verdictless', input: z.object({ n: z.number() }), breaker: true })
      let trialStarted = false
      const w = trackWorker({
        queue: q,
        concurrency: 5,
        // A trial that is never reported would hold the breaker half-open for a minute.
        breakers: { verdictless: { failureThreshold: 1, resetMs: 200, trialMs: 60_000 } },
        breakerCacheMs: 0,
      }).handle(task, async (input) => {
        if (input.n === 0) throw new Error('opens it')
        if (input.n === 1) {
          trialStarted = true
          await sleep(200)
          throw new NonRetryableError('bad input for this one task: says nothing about the dependency')
        }
        return input.n
      })
      await w.start()
      const opener = await q.submit(task, { n: 0 }, { maxRetries: 0 })
      await waitForTask(q, opener.id)
      expect((await q.breaker('verdictless').state()).state).toBe('open')
      const trial = await q.submit(task, { n: 1 })
      await until(async () => trialStarted, 5000, 'the trial to start')
      const next = await q.submit(task, { n: 2 })
      expect(await waitForTask(q, trial.id)).toMatchObject({ status: 'failed', attempts: 1 })
      // The next task took the freed trial, succeeded, and closed the breaker: well inside trialMs.
      expect(await waitForTask(q, next.id, { timeoutMs: 5000 })).toMatchObject({ status: 'completed' })
      expect((await q.breaker('verdictless').state()).state).toBe('closed')
      await w.close()
    })

    it('task breakers are opt-in: a task without one never waits; bad breaker options are rejected', async () => {
      const q = backend.queue()
      const task = defineTask({ name: 'always-fails', input: z.object({}) })
      const w = trackWorker({ queue: q, concurrency: 1 }).handle(task, () => {
        throw new Error('no')
      })
      await w.start()
      const ts = await q.submitMany(
        Array.from({ length: 7 }, () => ({ task, input: {}, options: { maxRetries: 0 } })),
      )
      for (const t of ts) expect((await waitForTask(q, t.id)).status).toBe('failed')
      expect((await q.breaker('always-fails').state()).state).toBe('closed')
      await w.close()
      const bad = [
        { breakers: { x: { failureThreshold: 0 } } },
        { breakers: { x: { resetMs: -1 } } },
        { heartbeatMs: 1 },
        { concurrency: { min: 5, max: 2 } },
        { concurrency: { min: 1, max: 5, scaleUpDepth: 3, scaleDownDepth: 3 } },
      ]
      for (const options of bad) {
        expect(() => trackWorker({ queue: q, ...options })).toThrow(TaskloomError)
      }
      expect(() => defineTask({ name: 'x', input: z.object({}), breaker: '' })).toThrow(TaskloomError)
      for (const breaker of [{ name: '' }, { perTenant: 'yes' }, { other: 1 }, false]) {
        // biome-ignore lint/suspicious/noExplicitAny: wrong shapes on purpose
        expect(() => defineTask({ name: 'x', input: z.object({}), breaker: breaker as any })).toThrow(
          TaskloomError,
        )
      }
      expect(() => trackWorker({ queue: q, breakers: false })).not.toThrow()
      // biome-ignore lint/suspicious/noExplicitAny: a wrong value on purpose
      expect(() => trackWorker({ queue: q, taskBreakers: 'always' as any })).toThrow(TaskloomError)
      expect(() => q.breaker('')).toThrow(TaskloomError)
    })

    it('detects a blocked event loop: WARN log, worker:blocked event and stats().eventLoopBlockedMs', async () => {
      const q = backend.queue()
      const task = defineTask({ name: 'cpu', input: z.object({}) })
      const { lines, logger } = capture()
      const w = trackWorker({ queue: q, logger, eventLoopBlockMs: 200, heartbeatMs: 5000 }).handle(
        task,
        () => {
          const end = Date.now() + 450
          while (Date.now() < end) {
            // synchronous work that blocks the event loop
          }
          return 1
        },
      )
      const blocked: number[] = []
      w.on('worker:blocked', (e) => blocked.push(e.blockedMs))
      await w.start()
      expect(w.stats().eventLoopBlockedMs).toBeLessThan(200)
      const t = await q.submit(task, {})
      await waitForTask(q, t.id)
      await until(() => blocked.length > 0, 2000, 'the block to be seen')
      expect(Math.max(...blocked)).toBeGreaterThanOrEqual(300)
      expect(w.stats().eventLoopBlockedMs).toBeGreaterThanOrEqual(300)
      expect(lines.some((l) => l.level === 'warn' && l.msg.includes('event loop blocked'))).toBe(true)
      await w.close()
    })

    it('heartbeats list the worker with its status and counters', async () => {
      const q = backend.queue()
      const task = defineTask({ name: 'slow', input: z.object({}) })
      let release!: () => void
      const gate = new Promise<void>((r) => (release = r))
      const w = trackWorker({ queue: q, concurrency: 4, heartbeatMs: 50 }).handle(task, () => gate)
      await w.start()
      const [idle] = await q.workers()
      expect(idle).toMatchObject({
        id: w.id,
        status: 'IDLE',
        tasksInHand: 0,
        concurrency: 4,
        pid: process.pid,
      })
      expect(idle!.lastHeartbeat).toBeInstanceOf(Date)
      expect(idle!.startedAt.getTime()).toBeLessThanOrEqual(Date.now())
      await q.submitMany([0, 1].map(() => ({ task, input: {} })))
      await until(
        async () => (await q.workers())[0]?.status === 'ACTIVE',
        3000,
        'the worker to report ACTIVE',
      )
      expect((await q.workers())[0]).toMatchObject({ tasksInHand: 2 })
      release()
      await until(async () => (await q.workers())[0]?.tasksProcessed === 2, 3000, 'two processed')
      await w.close()
      expect(await q.workers()).toEqual([])
    })

    it('autoscales the pool up when the queue stays deep and down when it stays shallow', async () => {
      const q = backend.queue()
      const task = defineTask({ name: 'io', input: z.object({}) })
      const { lines, logger } = capture()
      const w = trackWorker({
        queue: q,
        logger,
        concurrency: { min: 2, max: 16, scaleUpDepth: 20, scaleDownDepth: 1, intervalMs: 40, samples: 2 },
      }).handle(task, () => sleep(30))
      const scaled: ScaleDecision[] = []
      w.on('worker:scaled', (d) => scaled.push(d))
      expect(w.stats()).toMatchObject({ concurrency: 2, autoscale: { min: 2, max: 16 } })
      await q.submitMany(Array.from({ length: 400 }, () => ({ task, input: {} })))
      await w.start()
      await until(() => w.stats().concurrency === 16, 10_000, 'the pool to reach max')
      expect(scaled.slice(0, 3).map((d) => d.to)).toEqual([4, 8, 16])
      expect(scaled.every((d) => d.reason === 'queue-deep' || d.reason === 'queue-shallow')).toBe(true)
      await until(
        async () => {
          const c = await q.counts()
          return c.ready.normal === 0 && c.processing === 0
        },
        20_000,
        'the queue to drain',
      )
      await until(() => w.stats().concurrency === 2, 5000, 'the pool to shrink back to min')
      expect(scaled.at(-1)).toMatchObject({ to: 2, reason: 'queue-shallow' })
      expect(
        lines.some((l) => l.level === 'info' && l.msg.startsWith('autoscaler: concurrency 2 -> 4')),
      ).toBe(true)
      await w.close()
    })
  })
}

describe('autoscaler hysteresis', () => {
  it('acts only after `samples` reads past a threshold, never inside the band, within min and max', async () => {
    let depth = 0
    let c = 10
    const decisions: ScaleDecision[] = []
    const scaler = new Autoscaler(
      checkAutoscale({ min: 10, max: 40, scaleUpDepth: 100, scaleDownDepth: 10, samples: 3 }),
      () => c,
      async () => depth,
      (d) => {
        decisions.push(d)
        c = d.to
      },
      (err) => {
        throw err
      },
    )
    const read = async (d: number) => {
      depth = d
      return scaler.sample()
    }
    expect(await read(500)).toBeNull()
    expect(await read(500)).toBeNull()
    expect(await read(50)).toBeNull() // inside the band: the run of deep reads starts again
    expect(await read(500)).toBeNull()
    expect(await read(500)).toBeNull()
    expect(await read(500)).toMatchObject({ from: 10, to: 20, reason: 'queue-deep' })
    for (let i = 0; i < 5; i++) await read(500)
    expect(c).toBe(40)
    expect(await read(500)).toBeNull() // at max
    expect(await read(5)).toBeNull()
    expect(await read(5)).toBeNull()
    expect(await read(5)).toMatchObject({ from: 40, to: 20, reason: 'queue-shallow' })
    for (let i = 0; i < 6; i++) await read(0)
    expect(c).toBe(10)
    expect(decisions.map((d) => d.to)).toEqual([20, 40, 20, 10])
  })

  it('returns to min: 1 with the default thresholds once the queue is empty (issue 16 item 11)', async () => {
    let c = 4
    const scaler = new Autoscaler(
      checkAutoscale({ min: 1, max: 8, initial: 4, samples: 2 }),
      () => c,
      async () => 0,
      (d) => {
        c = d.to
      },
      (err) => {
        throw err
      },
    )
    for (let i = 0; i < 12; i++) await scaler.sample()
    expect(c).toBe(1)
  })
})

const durable = backends.find((b) => b.label === 'durable')!
describe.skipIf(!durable.available)('workers table (durable)', () => {
  it('mirrors heartbeats into the workers table and marks a closed worker stopped', async () => {
    const q = durable.queue()
    const task = defineTask({ name: 'noop', input: z.object({}) })
    const w = trackWorker({ queue: q, concurrency: 3, heartbeatMs: 50 }).handle(task, () => 1)
    await w.start()
    const t = await q.submit(task, {})
    await waitForTask(q, t.id)
    const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 1 })
    try {
      const row = async () =>
        (
          await pool.query(
            `select status, concurrency, tasks_in_hand, tasks_processed::int as processed, hostname, pid,
              started_at, last_heartbeat, heartbeat_ms from ${TEST_SCHEMA}.workers where id = $1 and queue = $2`,
            [w.id, q.name],
          )
        ).rows[0]
      await until(async () => (await row())?.processed === 1, 5000, 'the row to show one task processed')
      // A worker that fell silent (its last beat 10 s ago at a 1 s interval) is marked unhealthy in
      // the table by the live worker's coordinator step.
      const silentId = `silent-${q.name}`
      await q[internals].broker.heartbeat(
        {
          id: silentId,
          status: 'active',
          lastHeartbeat: Date.now() - 10_000,
          heartbeatMs: 1000,
          tasksInHand: 2,
          tasksProcessed: 5,
          hostname: 'gone',
          pid: 1,
          concurrency: 4,
          startedAt: Date.now() - 60_000,
        },
        Date.now(),
      )
      await until(
        async () =>
          (await pool.query(`select status from ${TEST_SCHEMA}.workers where id = $1`, [silentId])).rows[0]
            ?.status === 'unhealthy',
        5000,
        'the silent worker to be marked unhealthy in the table',
      )
      expect((await q.workers()).find((x) => x.id === silentId)).toMatchObject({ status: 'UNHEALTHY' })
      expect(await row()).toMatchObject({
        status: 'idle',
        concurrency: 3,
        tasks_in_hand: 0,
        pid: process.pid,
        heartbeat_ms: 50,
      })
      await w.close()
      expect((await row()).status).toBe('stopped')
    } finally {
      await pool.end()
    }
  })
})

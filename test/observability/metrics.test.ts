import pg from 'pg'
import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { defineTask, NonRetryableError, TaskloomError } from '../../src/index.js'
import { createMetrics } from '../../src/observability/metrics.js'
import { internals } from '../../src/queue/internal.js'
import { waitForTask } from '../../src/testing.js'
import { backends, sleep, trackWorker, until } from '../helpers/backends.js'
import { DATABASE_URL, hasPostgres } from '../helpers/services.js'

const job = defineTask({ name: 'metrics-job', input: z.object({ n: z.number() }) })
const other = defineTask({ name: 'metrics-other', input: z.object({}) })

/** The value of one series, or undefined when it is absent. */
async function value(registry: Registry, name: string, labels: Record<string, string> = {}) {
  const metric = registry.getSingleMetric(name)
  if (!metric) throw new Error(`no metric ${name}`)
  const { values } = await metric.get()
  const hit = values.find((v) =>
    Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want),
  )
  return hit?.value
}

/** The sample count of a histogram series. */
async function count(registry: Registry, name: string, labels: Record<string, string>) {
  const { values } = await registry.getSingleMetric(name)!.get()
  return values.find(
    (v) =>
      (v as { metricName?: string }).metricName === `${name}_count` &&
      Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want),
  )?.value
}

describe('createMetrics options', () => {
  it('rejects bad options with INVALID_OPTIONS naming each', () => {
    const bad = () =>
      createMetrics({ prefix: '9bad', maxTenants: 0, scrapeTimeoutMs: -1, registry: {} as Registry })
    expect(bad).toThrowError(TaskloomError)
    try {
      bad()
    } catch (err) {
      const e = err as TaskloomError
      expect(e.code).toBe('INVALID_OPTIONS')
      expect(e.issues.length).toBe(4)
      expect(e.message).toMatch(/prefix/)
      expect(e.message).toMatch(/maxTenants/)
    }
    expect(() => createMetrics().observe({} as never)).toThrowError(/observe needs a queue/)
    expect(() => createMetrics().observePool({} as never)).toThrowError(/observePool needs a pg.Pool/)
  })

  it('registers into the registry given, with the prefix given', async () => {
    const registry = new Registry()
    const metrics = createMetrics({ registry, prefix: 'taskloom_' })
    expect(metrics.registry).toBe(registry)
    metrics.rateLimitHit('acme')
    expect(await value(registry, 'taskloom_rate_limit_hits_total', { tenant_id: 'acme' })).toBe(1)
    expect(registry.getSingleMetric('rate_limit_hits_total')).toBeUndefined()
  })

  it('records API requests by route template and rate-limit hits, and renders the text format', async () => {
    const metrics = createMetrics()
    metrics.observeRequest('/tasks/:id', 'get', 200, 0.004)
    metrics.observeRequest('/tasks/:id', 'GET', 200, 0.006)
    metrics.observeRequest('/tasks', 'POST', 429, 0.001)
    metrics.rateLimitHit('acme')
    const r = metrics.registry
    expect(await count(r, 'api_request_duration_seconds', { endpoint: '/tasks/:id', method: 'GET' })).toBe(2)
    const { contentType, body } = await metrics.render()
    expect(contentType).toMatch(/^text\/plain/)
    expect(body).toContain(
      'api_request_duration_seconds_bucket{le="0.005",endpoint="/tasks/:id",method="GET",status="200"} 1',
    )
    expect(body).toContain('rate_limit_hits_total{tenant_id="acme"} 1')
  })

  it('bounds label cardinality: tenants beyond maxTenants share _other; tenant labels off give _all', async () => {
    const bounded = createMetrics({ maxTenants: 2 })
    for (const t of ['a', 'b', 'c', 'd', 'a']) bounded.rateLimitHit(t)
    const r = bounded.registry
    expect(await value(r, 'rate_limit_hits_total', { tenant_id: 'a' })).toBe(2)
    expect(await value(r, 'rate_limit_hits_total', { tenant_id: '_other' })).toBe(2)
    expect(await value(r, 'rate_limit_hits_total', { tenant_id: 'c' })).toBeUndefined()
    const off = createMetrics({ tenantLabels: false })
    off.rateLimitHit('a')
    off.rateLimitHit('b')
    expect(await value(off.registry, 'rate_limit_hits_total', { tenant_id: '_all' })).toBe(2)
    expect(await value(off.registry, 'rate_limit_hits_total', { tenant_id: 'a' })).toBeUndefined()
  })
})

describe.each(backends)('metrics of a queue and a worker ($label)', (backend) => {
  it.skipIf(!backend.available)(
    'counts submits by tenant, task type and priority, not idempotent repeats',
    async () => {
      const queue = backend.queue()
      const metrics = createMetrics()
      metrics.observe(queue)
      await queue.submit(job, { n: 1 }, { tenantId: 'acme', priority: 'high', idempotencyKey: 'k1' })
      await queue.submit(job, { n: 1 }, { tenantId: 'acme', priority: 'high', idempotencyKey: 'k1' })
      await queue.submitMany([
        { task: job, input: { n: 2 }, options: { tenantId: 'acme', priority: 'high' } },
        { task: other, input: {}, options: { tenantId: 'globex' } },
      ])
      const r = metrics.registry
      expect(
        await value(r, 'tasks_submitted_total', {
          tenant_id: 'acme',
          task_type: 'metrics-job',
          priority: 'high',
        }),
      ).toBe(2)
      expect(
        await value(r, 'tasks_submitted_total', {
          tenant_id: 'globex',
          task_type: 'metrics-other',
          priority: 'normal',
        }),
      ).toBe(1)
    },
  )

  it.skipIf(!backend.available)(
    'reads queue depth per priority and the DLQ size from the broker at scrape',
    async () => {
      const queue = backend.queue()
      const metrics = createMetrics()
      metrics.observe(queue)
      await queue.submitMany([
        ...[1, 2, 3].map((n) => ({ task: job, input: { n }, options: { priority: 'critical' as const } })),
        { task: job, input: { n: 4 }, options: { priority: 'low' as const } },
        { task: job, input: { n: 5 }, options: { delayMs: 60_000 } },
      ])
      const r = metrics.registry
      const depth = (priority: string) => value(r, 'task_queue_depth', { queue: queue.name, priority })
      expect(await depth('critical')).toBe(3)
      expect(await depth('high')).toBe(0)
      expect(await depth('low')).toBe(1)
      expect(await value(r, 'task_delayed_count', { queue: queue.name })).toBe(1)
      expect(await value(r, 'task_dlq_size', { queue: queue.name })).toBe(0)

      const worker = trackWorker({ queue, concurrency: 4, backoff: { baseMs: 1, maxMs: 1, jitter: 0 } })
      worker.handle(job, () => {
        throw new NonRetryableError('no')
      })
      await worker.start()
      await until(async () => (await queue.counts()).dead === 4, 10_000, 'four dead tasks')
      await new Promise((resolve) => setTimeout(resolve, 300)) // past the counts reuse window
      expect(await value(r, 'task_dlq_size', { queue: queue.name })).toBe(4)
      expect(await depth('critical')).toBe(0)
      await worker.close()
    },
  )

  it.skipIf(!backend.available)(
    'drops a queue that was closed from the scrape, without counting an error',
    async () => {
      const queue = backend.queue()
      const metrics = createMetrics()
      metrics.observe(queue)
      await queue.submit(job, { n: 1 })
      const r = metrics.registry
      expect(await value(r, 'task_queue_depth', { queue: queue.name, priority: 'normal' })).toBe(1)
      await queue.close()
      await new Promise((resolve) => setTimeout(resolve, 300)) // past the counts reuse window
      const { body } = await metrics.render()
      expect(body).not.toContain(`queue="${queue.name}"`)
      expect(await value(r, 'metrics_collect_errors_total', { source: 'queue_counts' })).toBe(0)
    },
  )

  it.skipIf(!backend.available)(
    'counts outcomes, retries, error types, durations, waits and utilization',
    async () => {
      const queue = backend.queue()
      const metrics = createMetrics()
      metrics.observe(queue)
      const worker = trackWorker({ queue, concurrency: 4, backoff: { baseMs: 1, maxMs: 1, jitter: 0 } })
      metrics.observeWorker(worker)
      let release!: () => void
      const gate = new Promise<void>((resolve) => (release = resolve))
      let flaky = 0
      worker.handle(job, async (input) => {
        if (input.n === 0) await gate
        if (input.n === 1 && ++flaky === 1) throw new TypeError('first try fails')
        if (input.n === 2) throw new RangeError('always')
        return input.n
      })
      const r = metrics.registry
      await worker.start()
      const blocked = await queue.submitMany(
        [0, 0].map((n) => ({ task: job, input: { n }, options: { tenantId: 't1' } })),
      )
      await until(() => worker.activeCount === 2, 10_000, 'two blocked handlers')
      expect(await value(r, 'worker_utilization', { worker_id: worker.id })).toBe(0.5)
      expect(await value(r, 'worker_count')).toBe(1)
      release()
      const a = await queue.submit(job, { n: 1 }, { tenantId: 't1', maxRetries: 2 })
      const b = await queue.submit(job, { n: 2 }, { tenantId: 't1', maxRetries: 1 })
      for (const t of [...blocked, a, b]) await waitForTask(queue, t.id)
      await until(
        async () => (await value(r, 'tasks_completed_total', { status: 'failed' })) === 1,
        5000,
        'failed count',
      )

      const labels = { queue: queue.name, tenant_id: 't1', task_type: 'metrics-job' }
      expect(await value(r, 'tasks_completed_total', { ...labels, status: 'completed' })).toBe(3)
      expect(await value(r, 'tasks_completed_total', { ...labels, status: 'failed' })).toBe(1)
      // Tasks failed for good, by their last error; attempts failed, by each attempt's error.
      expect(await value(r, 'tasks_failed_total', { ...labels, error_type: 'RangeError' })).toBe(1)
      expect(await value(r, 'tasks_failed_total', { ...labels, error_type: 'TypeError' })).toBeUndefined()
      expect(await value(r, 'task_attempts_failed_total', { ...labels, error_type: 'TypeError' })).toBe(1)
      expect(await value(r, 'task_attempts_failed_total', { ...labels, error_type: 'RangeError' })).toBe(2)
      expect(await value(r, 'task_retries_total', labels)).toBe(2)
      expect(await count(r, 'task_duration_seconds', { task_type: 'metrics-job', status: 'completed' })).toBe(
        3,
      )
      expect(await count(r, 'task_duration_seconds', { task_type: 'metrics-job', status: 'failed' })).toBe(3)
      expect(
        await count(r, 'task_queue_wait_seconds', { task_type: 'metrics-job', priority: 'normal' }),
      ).toBe(4)
      expect(await count(r, 'task_pickup_latency_seconds', { priority: 'normal' })).toBe(6)
      await worker.close()
      expect(await value(r, 'worker_count')).toBe(0)
      expect(await value(r, 'worker_utilization', { worker_id: worker.id })).toBe(0)
    },
  )
})

describe.each(backends)('queue-wide counters and gauges ($label)', (backend) => {
  it.skipIf(!backend.available)(
    'counts each event once for the fleet: two processes export the same totals, and a new one starts from them',
    async () => {
      const queue = backend.queue()
      const peer = backend.peer(queue)
      const a = createMetrics()
      const b = createMetrics()
      a.observe(queue)
      b.observe(peer)
      // Half the submits through each handle, as two API processes would.
      await queue.submit(job, { n: 1 }, { tenantId: 'acme' })
      await peer.submit(job, { n: 2 }, { tenantId: 'acme' })
      await peer.submit(job, { n: 3 }, { tenantId: 'acme', priority: 'high' })
      const labels = { queue: queue.name, tenant_id: 'acme', task_type: 'metrics-job', priority: 'normal' }
      for (const m of [a, b]) {
        expect(await value(m.registry, 'tasks_submitted_total', labels)).toBe(2)
        expect(await value(m.registry, 'tasks_submitted_total', { ...labels, priority: 'high' })).toBe(1)
        expect(await value(m.registry, 'task_queue_depth', { queue: queue.name, priority: 'normal' })).toBe(2)
      }
      // A process started later (a restart) exports the totals so far, not zero.
      const later = createMetrics()
      later.observe(backend.peer(queue))
      expect(await value(later.registry, 'tasks_submitted_total', labels)).toBe(2)
    },
  )

  it.skipIf(!backend.available)(
    'counts cancellations, lease expiries, dead-lettering and DLQ retries, each task once',
    async () => {
      const queue = backend.queue()
      const metrics = createMetrics()
      metrics.observe(queue)
      const r = metrics.registry
      const labels = { queue: queue.name, tenant_id: 'default', task_type: 'metrics-job' }
      const scrape = async (name: string, extra: Record<string, string> = {}) => {
        await sleep(260) // past the reuse window of one scrape's reads
        return value(r, name, { ...labels, ...extra })
      }

      const doomed = await queue.submit(job, { n: 0 }, { delayMs: 60_000 })
      await queue.cancel(doomed.id)
      expect(await scrape('tasks_cancelled_total')).toBe(1)

      // A worker that claims and vanishes: its lease expires, and on the last attempt the task is
      // dead-lettered (by the next claim, which reaps expired leases).
      const task = await queue.submit(job, { n: 1 }, { maxRetries: 0 })
      const broker = queue[internals].broker
      await broker.claim('ghost', 1, 100, Date.now())
      await sleep(150)
      await broker.claim('reaper', 1, 100, Date.now())
      await until(async () => (await queue.get(task.id))?.status === 'failed', 10_000, 'dead by lease expiry')
      expect(await scrape('task_lease_expirations_total')).toBe(1)
      expect(await scrape('tasks_failed_total', { error_type: 'LeaseExpiredError' })).toBe(1)
      expect(await scrape('tasks_completed_total', { status: 'failed' })).toBe(1)

      // Put back from the DLQ and completed: counted as put back, so it is finished once on net.
      await queue.dlq.retry(task.id)
      const worker = trackWorker({ queue, concurrency: 1 })
      worker.handle(job, () => 'done')
      await worker.start()
      await waitForTask(queue, task.id)
      await worker.close()
      expect(await scrape('tasks_dead_letter_retried_total')).toBe(1)
      expect(await scrape('tasks_completed_total', { status: 'completed' })).toBe(1)
      expect(await scrape('tasks_completed_total', { status: 'failed' })).toBe(1)
    },
  )

  it.skipIf(!backend.available)(
    'exports the age of the oldest ready task per priority, past cancelled tombstones',
    async () => {
      const queue = backend.queue()
      const metrics = createMetrics()
      metrics.observe(queue)
      const age = (priority: string) =>
        value(metrics.registry, 'task_oldest_ready_age_seconds', { queue: queue.name, priority })
      expect(await age('normal')).toBe(0)
      const first = await queue.submit(job, { n: 1 })
      await sleep(600)
      const second = await queue.submit(job, { n: 2 })
      await sleep(400)
      const before = Date.now()
      const oldest = (await age('normal'))!
      expect(oldest).toBeGreaterThanOrEqual(1)
      expect(oldest).toBeLessThan((before - first.createdAt.getTime()) / 1000 + 1)
      expect(await age('high')).toBe(0)
      // The oldest is cancelled (a tombstone stays at the head): the age is the next task's.
      await queue.cancel(first.id)
      await sleep(260)
      const next = (await age('normal'))!
      expect(next).toBeGreaterThanOrEqual(0.35)
      expect(next).toBeLessThan((Date.now() - second.createdAt.getTime()) / 1000 + 0.1)
      expect(next).toBeLessThan(oldest)
    },
  )

  it.skipIf(!backend.available)('exports shared circuit breaker state', async () => {
    const queue = backend.queue()
    const metrics = createMetrics()
    metrics.observe(queue, { breakers: ['smtp'] })
    const state = () =>
      value(metrics.registry, 'circuit_breaker_state', { queue: queue.name, breaker: 'smtp' })
    expect(await state()).toBe(0)
    const flaky = defineTask({ name: 'metrics-breaker', input: z.object({}) })
    const worker = trackWorker({
      queue,
      breakers: { smtp: { failureThreshold: 1, resetMs: 60_000 } },
      breakerCacheMs: 0,
    }).handle(flaky, (_input, ctx) =>
      ctx.breaker('smtp').run(() => {
        throw new Error('smtp down')
      }),
    )
    await worker.start()
    const t = await queue.submit(flaky, {}, { maxRetries: 0 })
    await waitForTask(queue, t.id)
    await worker.close()
    expect(await state()).toBe(2)
    await queue.breaker('smtp').reset()
    expect(await state()).toBe(0)
    expect(() => metrics.observe(queue, { breakers: [''] })).toThrowError(/breakers must be/)
  })
})

describe.each(backends)('fleet metrics of a worker ($label)', (backend) => {
  it.skipIf(!backend.available)(
    'counts breaker deferrals and event loop blocks, and reports the pool size',
    async () => {
      const queue = backend.queue()
      const metrics = createMetrics()
      const r = metrics.registry
      const flaky = defineTask({ name: 'metrics-flaky', input: z.object({ block: z.boolean() }) })
      const worker = trackWorker({
        queue,
        concurrency: 3,
        eventLoopBlockMs: 50,
        breakers: { 'metrics-flaky': { failureThreshold: 1, resetMs: 60_000 } },
        taskBreakers: true,
        breakerCacheMs: 0,
      }).handle(flaky, ({ block }) => {
        if (!block) throw new Error('dependency down')
        const until = Date.now() + 400 // synchronous work: the event loop is blocked
        while (Date.now() < until) {}
        return 'done'
      })
      metrics.observeWorker(worker)
      metrics.observe(queue)
      await worker.start()
      expect(await value(r, 'worker_concurrency', { worker_id: worker.id })).toBe(3)
      const blocker = await queue.submit(flaky, { block: true })
      expect((await waitForTask(queue, blocker.id)).status).toBe('completed')
      await until(
        async () => ((await value(r, 'worker_event_loop_blocked_total', { worker_id: worker.id })) ?? 0) >= 1,
        5000,
        'a block',
      )
      expect(
        await value(r, 'worker_event_loop_blocked_seconds_total', { worker_id: worker.id }),
      ).toBeGreaterThanOrEqual(0.05)
      const failing = await queue.submit(flaky, { block: false }, { maxRetries: 0 })
      expect((await waitForTask(queue, failing.id)).status).toBe('failed') // opens the breaker
      await queue.submit(flaky, { block: false })
      await until(
        async () =>
          (await value(r, 'tasks_deferred_total', {
            task_type: 'metrics-flaky',
            breaker: 'metrics-flaky',
          })) === 1,
        5000,
        'a deferral',
      )
      // The breaker that deferred a task is exported from then on: open.
      expect(await value(r, 'circuit_breaker_state', { queue: queue.name, breaker: 'metrics-flaky' })).toBe(2)
      await worker.close()
    },
  )
})

describe('worker_count from a fleet source', () => {
  it('counts ACTIVE and IDLE workers, not UNHEALTHY ones', async () => {
    const metrics = createMetrics({
      workers: async () => [
        { status: 'ACTIVE' },
        { status: 'IDLE' },
        { status: 'UNHEALTHY' },
        { status: 'ACTIVE' },
      ],
    })
    expect(await value(metrics.registry, 'worker_count')).toBe(3)
  })

  it('exports no worker_count, rather than 0, while the source has never answered', async () => {
    let answer: 'fail' | 'ok' = 'fail'
    const metrics = createMetrics({
      workers: async () => {
        if (answer === 'fail') throw new Error('redis unreachable')
        return [{ status: 'ACTIVE' }, { status: 'IDLE' }]
      },
    })
    expect((await metrics.render()).body).not.toMatch(/^worker_count /m)
    expect(await value(metrics.registry, 'metrics_collect_errors_total', { source: 'workers' })).toBe(1)
    answer = 'ok'
    expect((await metrics.render()).body).toMatch(/^worker_count 2$/m)
    answer = 'fail' // later failures keep the last value
    expect((await metrics.render()).body).toMatch(/^worker_count 2$/m)
  })

  it('bounds a slow source by scrapeTimeoutMs and counts the miss', async () => {
    const metrics = createMetrics({ scrapeTimeoutMs: 50, workers: () => new Promise(() => {}) })
    const started = Date.now()
    const { body } = await metrics.render()
    expect(Date.now() - started).toBeLessThan(1000)
    expect(body).toContain('# TYPE worker_count gauge')
    expect(await value(metrics.registry, 'metrics_collect_errors_total', { source: 'workers' })).toBe(1)
  })
})

describe.skipIf(!(await hasPostgres()))('observePool on a real pg.Pool', () => {
  it('reports active, idle and waiting connections and the size limit', async () => {
    const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 2 })
    const metrics = createMetrics()
    metrics.observePool(pool, { name: 'store' })
    const r = metrics.registry
    try {
      const held = [await pool.connect(), await pool.connect()]
      const waiting = pool.query('SELECT 1')
      await until(() => pool.waitingCount === 1, 5000, 'a waiting query')
      expect(await value(r, 'db_pool_connections', { pool: 'store', state: 'active' })).toBe(2)
      expect(await value(r, 'db_pool_waiting_requests', { pool: 'store' })).toBe(1)
      expect(await value(r, 'db_pool_max_connections', { pool: 'store' })).toBe(2)
      for (const c of held) c.release()
      await waiting
      expect(await value(r, 'db_pool_waiting_requests', { pool: 'store' })).toBe(0)
      expect(await value(r, 'db_pool_connections', { pool: 'store', state: 'idle' })).toBe(2)
    } finally {
      await pool.end()
    }
  })
})

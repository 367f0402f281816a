/**
 * Prometheus metrics for queues, workers, a PostgreSQL pool and the HTTP adapter, with the spec's
 * names and labels, into a prom-client registry the host passes in (default: a registry of its own).
 *
 * Counters and histograms are fed by events (the queue's submit hook, worker events); gauges that
 * describe shared state (queue depth, DLQ size, worker count) are read when Prometheus scrapes, with
 * one bounded-time `counts()` call per queue per scrape.
 *
 * @example
 * const metrics = createMetrics({ tenantLabels: true, maxTenants: 500 })
 * metrics.observe(queue)
 * metrics.observeWorker(worker)
 * const { contentType, body } = await metrics.render()   // serve on GET /metrics
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { QueueCounts } from '../broker/broker.js'
import { TaskloomError } from '../errors.js'
import { internals } from '../queue/internal.js'
import type { Queue } from '../queue/queue.js'
import { PRIORITIES } from '../task/model.js'
import { orTimeout, TIMED_OUT } from '../util/or-timeout.js'
import type { Worker } from '../worker/worker.js'
import { BoundedLabel } from './labels.js'

export interface MetricsOptions {
  /** Registry to register into. Default: a new one (`metrics.registry`). */
  registry?: Registry
  /** Prepended to every metric name, e.g. `'taskloom_'`. Default: none (the spec's bare names). */
  prefix?: string
  /** Label tasks and rate-limit hits with `tenant_id`. Off: every tenant is `_all`. Default true. */
  tenantLabels?: boolean
  /** Distinct tenant ids labelled before the rest share `_other`. Default 1,000. */
  maxTenants?: number
  /** Distinct task names (and, separately, error types and API routes) labelled. Default 200. */
  maxLabelValues?: number
  /** Longest a scrape waits for a queue's counts or the worker list. Default 1,000 ms. */
  scrapeTimeoutMs?: number
  /**
   * The fleet (e.g. `() => queue.workers()`): `worker_count` counts its ACTIVE and IDLE workers.
   * Default: the workers observed in this process that are running.
   */
  workers?: () => Promise<readonly { status: string }[]>
}

/** The pool shape read by `observePool` (a `pg.Pool` fits). */
export interface PoolLike {
  totalCount: number
  idleCount: number
  waitingCount: number
  options?: { max?: number }
}

const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900]
const WAIT_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600]
const API_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
/** A scrape within this long of the last reuses its queue counts (depth and DLQ share one call). */
const COUNTS_REUSE_MS = 250

interface ObservedQueue {
  queue: Queue
  counts: { at: number; value: Promise<QueueCounts | undefined> } | undefined
  unobserve(): void
}

export class TaskloomMetrics {
  readonly registry: Registry
  private readonly tenants: BoundedLabel
  private readonly taskTypes: BoundedLabel
  private readonly errorTypes: BoundedLabel
  private readonly routes: BoundedLabel
  private readonly scrapeTimeoutMs: number
  private readonly workersSource: MetricsOptions['workers']
  private readonly queues = new Map<Queue, ObservedQueue>()
  private readonly workers = new Map<Worker, () => void>()
  private readonly pools = new Map<string, PoolLike>()

  readonly submitted: Counter<'tenant_id' | 'task_type' | 'priority'>
  readonly completed: Counter<'tenant_id' | 'task_type' | 'status'>
  readonly failed: Counter<'tenant_id' | 'task_type' | 'error_type'>
  readonly retries: Counter<'tenant_id' | 'task_type'>
  readonly loopBlocked: Counter<'worker_id'>
  readonly loopBlockedSeconds: Counter<'worker_id'>
  readonly deferred: Counter<'task_type' | 'breaker'>
  readonly scaled: Counter<'worker_id' | 'direction'>
  readonly concurrency: Gauge<'worker_id'>
  readonly duration: Histogram<'task_type' | 'status'>
  readonly queueWait: Histogram<'task_type' | 'priority'>
  readonly pickup: Histogram<'priority'>
  readonly apiDuration: Histogram<'endpoint' | 'method' | 'status'>
  readonly rateLimitHits: Counter<'tenant_id'>
  readonly collectErrors: Counter<'source'>
  private readonly utilization: Gauge<'worker_id'>
  /** Scrape-time gauges labelled by queue, by metric name (for removing a queue's series). */
  private readonly queueGauges: Record<
    'task_queue_depth' | 'task_dlq_size' | 'task_delayed_count' | 'task_processing_count',
    Gauge<string>
  > = {} as never

  constructor(options: MetricsOptions = {}) {
    const o = checkOptions(options)
    const p = o.prefix
    const registry = o.registry ?? new Registry()
    this.registry = registry
    const registers = [registry]
    this.tenants = new BoundedLabel(o.tenantLabels ? o.maxTenants : 0)
    this.taskTypes = new BoundedLabel(o.maxLabelValues)
    this.errorTypes = new BoundedLabel(o.maxLabelValues)
    this.routes = new BoundedLabel(o.maxLabelValues)
    this.scrapeTimeoutMs = o.scrapeTimeoutMs
    this.workersSource = o.workers

    this.submitted = new Counter({
      name: `${p}tasks_submitted_total`,
      help: 'Tasks accepted by submit (idempotent repeats not counted).',
      labelNames: ['tenant_id', 'task_type', 'priority'],
      registers,
    })
    this.completed = new Counter({
      name: `${p}tasks_completed_total`,
      help: 'Tasks that reached a final outcome: status completed, or failed (retries exhausted, dead-lettered).',
      labelNames: ['tenant_id', 'task_type', 'status'],
      registers,
    })
    this.failed = new Counter({
      name: `${p}tasks_failed_total`,
      help: 'Failed attempts (including those that will be retried), by error type.',
      labelNames: ['tenant_id', 'task_type', 'error_type'],
      registers,
    })
    this.retries = new Counter({
      name: `${p}task_retries_total`,
      help: 'Failed attempts scheduled for a retry.',
      labelNames: ['tenant_id', 'task_type'],
      registers,
    })
    this.loopBlocked = new Counter({
      name: `${p}worker_event_loop_blocked_total`,
      help: 'Times a worker event loop was blocked for at least eventLoopBlockMs.',
      labelNames: ['worker_id'],
      registers,
    })
    this.loopBlockedSeconds = new Counter({
      name: `${p}worker_event_loop_blocked_seconds_total`,
      help: 'Total time worker event loops were reported blocked.',
      labelNames: ['worker_id'],
      registers,
    })
    this.deferred = new Counter({
      name: `${p}tasks_deferred_total`,
      help: 'Tasks given back unrun (no attempt spent) because their circuit breaker was open.',
      labelNames: ['task_type', 'breaker'],
      registers,
    })
    this.scaled = new Counter({
      name: `${p}worker_scale_decisions_total`,
      help: 'Autoscaler changes of a worker pool size, by direction (up or down).',
      labelNames: ['worker_id', 'direction'],
      registers,
    })
    this.concurrency = new Gauge({
      name: `${p}worker_concurrency`,
      help: 'Pool size (concurrency) per worker of this process; moves between min and max when autoscaling.',
      labelNames: ['worker_id'],
      registers,
      collect() {
        for (const worker of self.workers.keys()) this.set({ worker_id: worker.id }, worker.concurrency)
      },
    })
    this.duration = new Histogram({
      name: `${p}task_duration_seconds`,
      help: 'Handler run time of one attempt, by outcome (completed or failed).',
      labelNames: ['task_type', 'status'],
      buckets: DURATION_BUCKETS,
      registers,
    })
    this.queueWait = new Histogram({
      name: `${p}task_queue_wait_seconds`,
      help: 'Time from submit to the start of the first attempt (includes any requested delay).',
      labelNames: ['task_type', 'priority'],
      buckets: WAIT_BUCKETS,
      registers,
    })
    this.pickup = new Histogram({
      name: `${p}task_pickup_latency_seconds`,
      help: 'Time from a task becoming claimable (due) to a worker starting it.',
      labelNames: ['priority'],
      buckets: WAIT_BUCKETS,
      registers,
    })
    this.apiDuration = new Histogram({
      name: `${p}api_request_duration_seconds`,
      help: 'HTTP API request duration by route template, method and status code.',
      labelNames: ['endpoint', 'method', 'status'],
      buckets: API_BUCKETS,
      registers,
    })
    this.rateLimitHits = new Counter({
      name: `${p}rate_limit_hits_total`,
      help: 'Requests refused by the rate limiter (HTTP 429).',
      labelNames: ['tenant_id'],
      registers,
    })

    const self = this
    const countsGauge = (
      name: keyof typeof self.queueGauges,
      help: string,
      labelNames: string[],
      fill: (g: Gauge<string>, queue: string, c: QueueCounts) => void,
    ) => {
      this.queueGauges[name] = new Gauge({
        name: `${p}${name}`,
        help,
        labelNames,
        registers,
        async collect() {
          await Promise.all(
            [...self.queues.values()].map(async (q) => {
              const c = await self.countsOf(q)
              if (c) fill(this, q.queue.name, c)
            }),
          )
        },
      })
    }
    countsGauge(
      'task_queue_depth',
      'Tasks ready to run, by queue and priority (read from the broker at scrape).',
      ['queue', 'priority'],
      (g, queue, c) => {
        for (const priority of PRIORITIES) g.set({ queue, priority }, c.ready[priority])
      },
    )
    countsGauge('task_dlq_size', 'Tasks in the dead-letter queue.', ['queue'], (g, queue, c) =>
      g.set({ queue }, c.dead),
    )
    countsGauge(
      'task_delayed_count',
      'Tasks waiting for their run time (delayed or backing off).',
      ['queue'],
      (g, queue, c) => g.set({ queue }, c.delayed),
    )
    countsGauge('task_processing_count', 'Tasks leased to a worker now.', ['queue'], (g, queue, c) =>
      g.set({ queue }, c.processing),
    )

    new Gauge({
      name: `${p}worker_count`,
      help: 'Workers ACTIVE or IDLE (the fleet when a worker source is given, else this process).',
      registers,
      async collect() {
        const n = await self.workerCount()
        if (n !== undefined) this.set(n)
      },
    })
    this.utilization = new Gauge({
      name: `${p}worker_utilization`,
      help: 'Handlers running / concurrency, per worker of this process (0 to 1).',
      labelNames: ['worker_id'],
      registers,
      collect() {
        for (const worker of self.workers.keys()) {
          const value = worker.isRunning ? worker.activeCount / worker.concurrency : 0
          this.set({ worker_id: worker.id }, value)
        }
      },
    })
    new Gauge({
      name: `${p}db_pool_connections`,
      help: 'PostgreSQL pool connections by state (active: checked out, idle: open and free).',
      labelNames: ['pool', 'state'],
      registers,
      collect() {
        for (const [pool, p] of self.pools) {
          this.set({ pool, state: 'active' }, Math.max(p.totalCount - p.idleCount, 0))
          this.set({ pool, state: 'idle' }, p.idleCount)
        }
      },
    })
    new Gauge({
      name: `${p}db_pool_max_connections`,
      help: 'The PostgreSQL pool size limit.',
      labelNames: ['pool'],
      registers,
      collect() {
        for (const [pool, p] of self.pools) this.set({ pool }, p.options?.max ?? 10)
      },
    })
    new Gauge({
      name: `${p}db_pool_waiting_requests`,
      help: 'Queries waiting for a PostgreSQL pool connection (above 0 for long: the pool is exhausted).',
      labelNames: ['pool'],
      registers,
      collect() {
        for (const [pool, p] of self.pools) this.set({ pool }, p.waitingCount)
      },
    })
    this.collectErrors = new Counter({
      name: `${p}metrics_collect_errors_total`,
      help: 'Scrape-time reads that failed or timed out (the gauge kept its previous value).',
      labelNames: ['source'],
      registers,
    })
    // Present at 0 from the start, so an alert on its increase sees the first error.
    for (const source of ['queue_counts', 'workers']) this.collectErrors.inc({ source }, 0)
  }

  /**
   * Counts the queue's submits, and reads its depth, delayed, processing and DLQ counts at each
   * scrape. Answers a function that stops observing it.
   */
  observe(queue: Queue): () => void {
    const q = queue?.[internals]
    if (!q) throw new TaskloomError('INVALID_OPTIONS', 'observe needs a queue made by createQueue()')
    const existing = this.queues.get(queue)
    if (existing) return existing.unobserve
    const listener: typeof q.submitted extends Set<infer L> ? L : never = (tasks, results) => {
      tasks.forEach((task, i) => {
        if (results[i]?.deduplicated) return
        this.submitted.inc({
          tenant_id: this.tenants.value(task.tenantId),
          task_type: this.taskTypes.value(task.name),
          priority: task.priority,
        })
      })
    }
    q.submitted.add(listener)
    const observed: ObservedQueue = {
      queue,
      counts: undefined,
      unobserve: () => {
        q.submitted.delete(listener)
        this.queues.delete(queue)
        const g = this.queueGauges
        for (const priority of PRIORITIES) g.task_queue_depth.remove({ queue: queue.name, priority })
        for (const gauge of [g.task_dlq_size, g.task_delayed_count, g.task_processing_count])
          gauge.remove({ queue: queue.name })
      },
    }
    this.queues.set(queue, observed)
    return observed.unobserve
  }

  /** Counts the worker's outcomes, durations, waits and retries, and reports its utilization. */
  observeWorker(worker: Worker): () => void {
    if (!worker || typeof worker.on !== 'function')
      throw new TaskloomError('INVALID_OPTIONS', 'observeWorker needs a worker made by createWorker()')
    const existing = this.workers.get(worker)
    if (existing) return existing
    const offs = [
      worker.on('task:started', ({ task }) => {
        const now = Date.now()
        const taskType = this.taskTypes.value(task.name)
        if (task.attempt === 1)
          this.queueWait.observe(
            { task_type: taskType, priority: task.priority },
            Math.max(now - task.createdAt, 0) / 1000,
          )
        this.pickup.observe({ priority: task.priority }, Math.max(now - task.runAt, 0) / 1000)
      }),
      worker.on('task:completed', ({ task, durationMs }) => {
        const task_type = this.taskTypes.value(task.name)
        this.completed.inc({ tenant_id: this.tenants.value(task.tenantId), task_type, status: 'completed' })
        this.duration.observe({ task_type, status: 'completed' }, durationMs / 1000)
      }),
      worker.on('task:failed', ({ task, error, willRetry, durationMs }) => {
        const task_type = this.taskTypes.value(task.name)
        const tenant_id = this.tenants.value(task.tenantId)
        this.duration.observe({ task_type, status: 'failed' }, durationMs / 1000)
        this.failed.inc({ tenant_id, task_type, error_type: this.errorTypes.value(error.name) })
        if (willRetry) this.retries.inc({ tenant_id, task_type })
        else this.completed.inc({ tenant_id, task_type, status: 'failed' })
      }),
      worker.on('task:deferred', ({ task, breaker }) => {
        this.deferred.inc({
          task_type: this.taskTypes.value(task.name),
          breaker: this.taskTypes.value(breaker),
        })
      }),
      worker.on('worker:blocked', ({ blockedMs }) => {
        this.loopBlocked.inc({ worker_id: worker.id })
        this.loopBlockedSeconds.inc({ worker_id: worker.id }, blockedMs / 1000)
      }),
      worker.on('worker:scaled', ({ from, to }) => {
        this.scaled.inc({ worker_id: worker.id, direction: to > from ? 'up' : 'down' })
      }),
    ]
    const unobserve = () => {
      for (const off of offs) off()
      this.workers.delete(worker)
      this.utilization.remove({ worker_id: worker.id })
      this.concurrency.remove({ worker_id: worker.id })
    }
    this.workers.set(worker, unobserve)
    return unobserve
  }

  /** Reports a PostgreSQL pool's active, idle and waiting counts and its size limit. */
  observePool(pool: PoolLike, options: { name?: string } = {}): () => void {
    if (!pool || typeof pool.totalCount !== 'number' || typeof pool.waitingCount !== 'number') {
      throw new TaskloomError(
        'INVALID_OPTIONS',
        'observePool needs a pg.Pool (totalCount, idleCount, waitingCount)',
      )
    }
    const name = options.name ?? 'default'
    this.pools.set(name, pool)
    return () => {
      if (this.pools.get(name) === pool) this.pools.delete(name)
    }
  }

  /** One HTTP request: `route` is the template (`/tasks/:id`), never the raw path. */
  observeRequest(route: string, method: string, status: number, seconds: number): void {
    if (!Number.isFinite(seconds) || seconds < 0) return
    this.apiDuration.observe(
      {
        endpoint: this.routes.value(route),
        method: String(method).toUpperCase(),
        status: String(status),
      },
      seconds,
    )
  }

  /** One request refused by the rate limiter. */
  rateLimitHit(tenantId: string): void {
    this.rateLimitHits.inc({ tenant_id: this.tenants.value(tenantId) })
  }

  /** The Prometheus text exposition of the registry, for `GET /metrics`. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() }
  }

  private countsOf(q: ObservedQueue): Promise<QueueCounts | undefined> {
    const now = Date.now()
    if (q.counts && now - q.counts.at < COUNTS_REUSE_MS) return q.counts.value
    const value = this.bounded('queue_counts', () =>
      q.queue.counts().catch((err: unknown) => {
        // A closed queue is no failure: it stops being observed, and its series go. (By code, not
        // instanceof: the CJS build gives each entry its own copy of the error class.)
        if ((err as { code?: unknown } | null)?.code === 'CLOSED') {
          q.unobserve()
          return undefined
        }
        throw err
      }),
    )
    q.counts = { at: now, value }
    return value
  }

  private async workerCount(): Promise<number | undefined> {
    const source = this.workersSource
    if (!source) return [...this.workers.keys()].filter((w) => w.isRunning).length
    const list = await this.bounded('workers', source)
    return list?.filter((w) => w.status === 'ACTIVE' || w.status === 'IDLE').length
  }

  /** Runs a scrape-time read for at most `scrapeTimeoutMs`; undefined (and an error count) if it fails. */
  private async bounded<T>(source: string, read: () => Promise<T>): Promise<T | undefined> {
    try {
      const out = await orTimeout(read(), this.scrapeTimeoutMs)
      if (out === TIMED_OUT) {
        this.collectErrors.inc({ source })
        return undefined
      }
      return out
    } catch {
      this.collectErrors.inc({ source })
      return undefined
    }
  }
}

/** Creates the metrics. See {@link MetricsOptions}. */
export function createMetrics(options: MetricsOptions = {}): TaskloomMetrics {
  return new TaskloomMetrics(options)
}

function checkOptions(options: MetricsOptions) {
  const o = {
    prefix: '',
    tenantLabels: true,
    maxTenants: 1000,
    maxLabelValues: 200,
    scrapeTimeoutMs: 1000,
    ...options,
  } satisfies MetricsOptions
  const bad: string[] = []
  if (typeof o.prefix !== 'string' || !/^([a-zA-Z_:][a-zA-Z0-9_:]*)?$/.test(o.prefix))
    bad.push('prefix must be a valid Prometheus name prefix ([a-zA-Z_:][a-zA-Z0-9_:]*)')
  if (typeof o.tenantLabels !== 'boolean') bad.push('tenantLabels must be a boolean')
  const int = (v: unknown, min: number, max: number) =>
    typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max
  if (!int(o.maxTenants, 1, 1_000_000)) bad.push('maxTenants must be an integer from 1 to 1000000')
  if (!int(o.maxLabelValues, 1, 100_000)) bad.push('maxLabelValues must be an integer from 1 to 100000')
  if (!int(o.scrapeTimeoutMs, 1, 60_000)) bad.push('scrapeTimeoutMs must be an integer from 1 to 60000')
  if (o.workers !== undefined && typeof o.workers !== 'function')
    bad.push('workers must be a function answering the worker list')
  if (o.registry !== undefined && typeof (o.registry as Registry | null)?.registerMetric !== 'function')
    bad.push('registry must be a prom-client Registry')
  if (bad.length > 0) {
    throw new TaskloomError('INVALID_OPTIONS', `invalid metrics options: ${bad.join('; ')}`, {
      issues: bad.map((message) => ({ path: 'options', message })),
    })
  }
  return o
}

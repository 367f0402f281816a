/**
 * Prometheus metrics for queues, workers, a PostgreSQL pool and the HTTP adapter, with the spec's
 * names and labels, into a prom-client registry the host passes in (default: a registry of its own).
 *
 * Two kinds of series:
 * - **queue-wide** (labelled `queue`): task counters (submitted, completed, failed, cancelled, …)
 *   and gauges (depth, oldest ready age, delayed, processing, DLQ size, breaker state) read from the
 *   broker at scrape. The broker counts each event once for the fleet, in the script call that makes
 *   the change (Redis: the queue's `stats` hash), so every process that observes a queue exports the
 *   same values: aggregate them with `max by (queue, …)`, never `sum`. They survive restarts of
 *   the processes.
 * - **per process** (fed by this process's worker events): durations, waits, pickup latency,
 *   utilization, deferrals, event-loop blocks, API requests: aggregate with `sum`.
 *
 * @example
 * const metrics = createMetrics({ tenantLabels: true, maxTenants: 500 })
 * metrics.observe(queue)
 * metrics.observeWorker(worker)
 * const { contentType, body } = await metrics.render()   // serve on GET /metrics
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { EventCount, QueueCounts } from '../broker/broker.js'
import { TaskloomError } from '../errors.js'
import { internals } from '../queue/internal.js'
import type { Queue } from '../queue/queue.js'
import { PRIORITIES } from '../task/model.js'
import { orTimeout, TIMED_OUT } from '../util/or-timeout.js'
import type { Worker } from '../worker/worker.js'
import { registerFlowSeries } from './flow-series.js'
import { BoundedLabel } from './labels.js'
import { BREAKER_STATES, EVENT_COUNTERS, eventTotals } from './queue-series.js'

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

/** Options of `observe(queue, options)`. */
export interface ObserveOptions {
  /**
   * Circuit breakers whose shared state `circuit_breaker_state` exports (task names, or named
   * breakers such as 'smtp'). Breakers that deferred a task in an observed worker are added. Default: none.
   */
  breakers?: readonly string[]
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
/** Breakers added to a queue's `circuit_breaker_state` from deferrals, at most (the rest are named in `observe`). */
const MAX_AUTO_BREAKERS = 100

/** A read shared by the gauges (or counters) of one scrape. */
type Shared<T> = { at: number; value: Promise<T | undefined> } | undefined

interface ObservedQueue {
  queue: Queue
  counts: Shared<QueueCounts>
  events: Shared<EventCount[]>
  breakers: Set<string>
  unobserve(): void
}

export class TaskloomMetrics {
  readonly registry: Registry
  private readonly tenants: BoundedLabel
  private readonly taskTypes: BoundedLabel
  private readonly errorTypes: BoundedLabel
  private readonly routes: BoundedLabel
  private readonly groups: BoundedLabel
  private readonly scrapeTimeoutMs: number
  private readonly workersSource: MetricsOptions['workers']
  private readonly queues = new Map<Queue, ObservedQueue>()
  private readonly workers = new Map<Worker, () => void>()
  private readonly pools = new Map<string, PoolLike>()

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
  /** Tasks given back because their handler was rate-limited upstream (src/flow). */
  readonly rateLimited: Counter<'task_type' | 'scope'>
  readonly collectErrors: Counter<'source'>
  private readonly utilization: Gauge<'worker_id'>
  /** Scrape-time gauges labelled by queue, by metric name (for removing a queue's series). */
  private readonly queueGauges: Record<
    | 'task_queue_depth'
    | 'task_oldest_ready_age_seconds'
    | 'task_dlq_size'
    | 'task_delayed_count'
    | 'task_processing_count',
    Gauge<string>
  > = {} as never
  private readonly eventCounters = new Map<keyof typeof EVENT_COUNTERS, Counter<string>>()
  /** The label sets last exported per (counter, queue), so the next scrape can replace them. */
  private readonly eventSeries = new Map<string, Record<string, string>[]>()
  private readonly breakerState: Gauge<'queue' | 'breaker'>
  /** Whether `worker_count` has had a value: until then a failed read exports no series, not 0. */
  private workerCountKnown = false

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
    // Groups default to tenant ids: labelled only when tenants are.
    this.groups = new BoundedLabel(o.tenantLabels ? o.maxTenants : 0)
    this.scrapeTimeoutMs = o.scrapeTimeoutMs
    this.workersSource = o.workers

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
    for (const [name, spec] of Object.entries(EVENT_COUNTERS) as [
      keyof typeof EVENT_COUNTERS,
      (typeof EVENT_COUNTERS)[keyof typeof EVENT_COUNTERS],
    ][]) {
      const labelNames = ['queue', 'tenant_id', 'task_type', ...(spec.detail ? [spec.detail] : [])]
      this.eventCounters.set(
        name,
        new Counter({
          name: `${p}${name}`,
          help: spec.help,
          labelNames,
          registers,
          async collect() {
            const read = await Promise.all(
              [...self.queues.values()].map(async (q) => [q, await self.eventsOf(q)] as const),
            )
            for (const [q, counts] of read) {
              if (counts) self.fillEventCounter(this, name, q.queue.name, counts)
            }
          },
        }),
      )
    }
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
    countsGauge(
      'task_oldest_ready_age_seconds',
      'Age of the oldest ready task, by queue and priority: how long the next task a claim takes has been claimable (0 when none is ready). Grows while nothing is picked up.',
      ['queue', 'priority'],
      (g, queue, c) => {
        const now = Date.now()
        for (const priority of PRIORITIES) {
          const at = c.oldestReadyAt?.[priority] ?? null
          g.set({ queue, priority }, at === null ? 0 : Math.max(now - at, 0) / 1000)
        }
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
    this.rateLimited = registerFlowSeries({
      prefix: p,
      registers,
      groups: this.groups,
      names: this.taskTypes,
      read: () =>
        Promise.all(
          [...self.queues.values()].map(async (q) => [q.queue.name, await self.countsOf(q)] as const),
        ),
    })

    new Gauge({
      name: `${p}worker_count`,
      help: 'Workers ACTIVE or IDLE (the fleet when a worker source is given, else this process).',
      registers,
      async collect() {
        const n = await self.workerCount()
        if (n !== undefined) {
          self.workerCountKnown = true
          this.set(n)
        } else if (!self.workerCountKnown) {
          // Never read yet: no series, rather than a 0 that would read as "no workers".
          this.remove()
        }
      },
    })
    this.breakerState = new Gauge({
      name: `${p}circuit_breaker_state`,
      help: 'Shared circuit breaker state by queue and breaker: 0 closed, 1 half-open, 2 open (read at scrape).',
      labelNames: ['queue', 'breaker'],
      registers,
      async collect() {
        await Promise.all(
          [...self.queues.values()].flatMap((q) =>
            [...q.breakers].map(async (breaker) => {
              const info = await self.bounded('breakers', () => q.queue.breaker(breaker).state())
              if (info) this.set({ queue: q.queue.name, breaker }, BREAKER_STATES[info.state])
            }),
          ),
        )
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
    for (const source of ['queue_counts', 'queue_events', 'workers', 'breakers'])
      this.collectErrors.inc({ source }, 0)
  }

  /**
   * Exports the queue's fleet-wide task counters and its depth, oldest ready age, delayed,
   * processing, DLQ size and breaker states, all read from the broker at each scrape. Answers a
   * function that stops observing it.
   */
  observe(queue: Queue, options: ObserveOptions = {}): () => void {
    const q = queue?.[internals]
    if (!q) throw new TaskloomError('INVALID_OPTIONS', 'observe needs a queue made by createQueue()')
    const breakers = options?.breakers ?? []
    if (!Array.isArray(breakers) || breakers.some((b) => typeof b !== 'string' || b.length === 0))
      throw new TaskloomError('INVALID_OPTIONS', 'observe: breakers must be an array of breaker names')
    const existing = this.queues.get(queue)
    if (existing) {
      for (const b of breakers) existing.breakers.add(b)
      return existing.unobserve
    }
    const observed: ObservedQueue = {
      queue,
      counts: undefined,
      events: undefined,
      breakers: new Set(breakers),
      unobserve: () => {
        if (this.queues.get(queue) !== observed) return
        this.queues.delete(queue)
        const name = queue.name
        const g = this.queueGauges
        for (const priority of PRIORITIES) {
          g.task_queue_depth.remove({ queue: name, priority })
          g.task_oldest_ready_age_seconds.remove({ queue: name, priority })
        }
        for (const gauge of [g.task_dlq_size, g.task_delayed_count, g.task_processing_count])
          gauge.remove({ queue: name })
        for (const breaker of observed.breakers) this.breakerState.remove({ queue: name, breaker })
        for (const [metric, counter] of this.eventCounters) {
          for (const labels of this.eventSeries.get(`${metric}\n${name}`) ?? []) counter.remove(labels)
          this.eventSeries.delete(`${metric}\n${name}`)
        }
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
        this.duration.observe(
          { task_type: this.taskTypes.value(task.name), status: 'completed' },
          durationMs / 1000,
        )
      }),
      worker.on('task:failed', ({ task, durationMs }) => {
        this.duration.observe(
          { task_type: this.taskTypes.value(task.name), status: 'failed' },
          durationMs / 1000,
        )
      }),
      worker.on('task:deferred', ({ task, breaker }) => {
        for (const observed of this.queues.values()) {
          if (observed.queue.name === worker.queueName && observed.breakers.size < MAX_AUTO_BREAKERS)
            observed.breakers.add(breaker)
        }
        this.deferred.inc({
          task_type: this.taskTypes.value(task.name),
          breaker: this.taskTypes.value(breaker),
        })
      }),
      worker.on('task:rate-limited', ({ task, scope }) => {
        this.rateLimited.inc({ task_type: this.taskTypes.value(task.name), scope: scope.kind })
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
      this.unlessClosed(q, () => q.queue.counts({ oldestReady: true, flow: true })),
    )
    q.counts = { at: now, value }
    return value
  }

  private eventsOf(q: ObservedQueue): Promise<EventCount[] | undefined> {
    const now = Date.now()
    if (q.events && now - q.events.at < COUNTS_REUSE_MS) return q.events.value
    const value = this.bounded('queue_events', () => this.unlessClosed(q, () => q.queue.eventCounts()))
    q.events = { at: now, value }
    return value
  }

  /** A closed queue is no failure: it stops being observed, and its series go. */
  private unlessClosed<T>(q: ObservedQueue, read: () => Promise<T>): Promise<T | undefined> {
    return read().catch((err: unknown) => {
      // By code, not instanceof: the CJS build gives each entry its own copy of the error class.
      if ((err as { code?: unknown } | null)?.code === 'CLOSED') {
        q.unobserve()
        return undefined
      }
      throw err
    })
  }

  /** Sets one queue's series of a queue-wide counter to the broker's totals (bounded labels summed). */
  private fillEventCounter(
    counter: Counter<string>,
    name: keyof typeof EVENT_COUNTERS,
    queue: string,
    counts: readonly EventCount[],
  ): void {
    const totals = eventTotals(EVENT_COUNTERS[name], queue, counts, {
      tenant: (v) => this.tenants.value(v),
      taskType: (v) => this.taskTypes.value(v),
      errorType: (v) => this.errorTypes.value(v),
    })
    const key = `${name}\n${queue}`
    for (const labels of this.eventSeries.get(key) ?? []) counter.remove(labels)
    for (const { labels, n } of totals) counter.inc(labels, n)
    this.eventSeries.set(
      key,
      totals.map((t) => t.labels),
    )
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

/**
 * `createWorker`: claims tasks in batches, runs typed handlers with leases, timeouts, retries and
 * fencing, and shuts down gracefully.
 */

import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import type { Broker, ClaimedTask, Completion, Failure, FencedOutcome } from '../broker/broker.js'
import { LeaseLostError, NonRetryableError, TaskloomError, TaskTimeoutError } from '../errors.js'
import { type AutoscaleOptions, Autoscaler, checkAutoscale } from '../fleet/autoscaler.js'
import { BreakerGate } from '../fleet/breaker-gate.js'
import { BreakerOpenError, type BreakerOptions, tenantBreaker } from '../fleet/breakers.js'
import { EventLoopWatch } from '../fleet/event-loop.js'
import { Heartbeat } from '../fleet/heartbeat.js'
import { judgeLiveness, type LivenessOptions, type LivenessReport } from '../fleet/liveness.js'
import { RateLimitedError, throttleTask } from '../flow/rate-limited.js'
import { childLogger, type Logger, logEnabled } from '../logger.js'
import { startTaskSpans } from '../observability/tracing.js'
import { internals, type QueueInternals } from '../queue/internal.js'
import type { Queue } from '../queue/queue.js'
import { scheduleOfKey } from '../schedule/tick-key.js'
import type { TaskDefinition } from '../task/define-task.js'
import { type AttemptOutcome, toErrorInfo } from '../task/model.js'
import { checkInput } from '../task/validate.js'
import { Batcher } from '../util/batcher.js'
import { BACKOFF_DEFAULTS, type BackoffOptions, backoffDelay } from './backoff.js'
import type { TaskContext } from './context.js'
import { checkOutput, dependencyReads } from './dependencies.js'
import { WorkerEmitter, type WorkerEventName, type WorkerEvents } from './events.js'
import { TaskOutputs } from './task-output.js'

export interface WorkerOptions {
  queue: Queue
  /**
   * Handlers running at once. Default 10. `{ min, max }` autoscales the pool between the two on
   * the queue's depth (see AutoscaleOptions).
   */
  concurrency?: number | AutoscaleOptions
  /** Lease (visibility timeout): a task whose worker stops renewing becomes claimable again after it. Default 30,000 ms. */
  leaseMs?: number
  /** Most tasks taken per claim round trip. Default: `concurrency`. */
  batchSize?: number
  /** Longest an idle worker waits before looking again. Default 1,000 ms. */
  pollIntervalMs?: number
  /** Retry delays. Default 1 s, 2 s, 4 s ... capped at 5 min, 20% jitter. */
  backoff?: BackoffOptions
  /** Default: `<hostname>:<pid>:<random>`. */
  id?: string
  /** Default: the queue's logger. */
  logger?: Logger
  /** Heartbeat interval; a worker silent for 3 of them is unhealthy and its leases reclaimed. Default 10,000 ms. */
  heartbeatMs?: number
  /**
   * Circuit breaker settings per breaker name (a named breaker such as 'smtp', or a task name);
   * `default` applies to the rest. A tenant's own breaker (`'smtp@acme'`) takes the settings of its
   * name (`'smtp'`). `false`: no settings (the same as `{}`; kept for older code).
   */
  breakers?: Record<string, BreakerOptions> | false
  /**
   * A breaker per task name for every task without its own `breaker` (see `defineTask`): `true`,
   * one per task name shared by all tenants; `'per-tenant'`, one per task name and tenant. Default
   * false: breakers protect dependencies, so only tasks that name one (and `ctx.breaker`) use them,
   * and one tenant's failures never hold back another tenant's tasks of the same name.
   */
  taskBreakers?: boolean | 'per-tenant'
  /** How long a "closed" breaker answer is trusted before asking Redis again. Default 1,000 ms. */
  breakerCacheMs?: number
  /** An event loop stalled this long is reported (WARN log, `worker:blocked`, stats). Default 500 ms. */
  eventLoopBlockMs?: number
}

/** `worker.stats()`. */
export interface WorkerStats {
  id: string
  /** The pool size now (moves between min and max when autoscaling). */
  concurrency: number
  inFlight: number
  /** Tasks completed by this worker. */
  processed: number
  /** Attempts that failed on this worker. */
  failed: number
  /** Tasks given back unrun because their breaker was open. */
  deferred: number
  /** Longest event loop stall seen in the last heartbeat interval or two (ms). */
  eventLoopBlockedMs: number
  /** p99 event loop delay over the current heartbeat interval (ms). */
  eventLoopDelayP99Ms: number
  /** Autoscaling bounds, when on. */
  autoscale: { min: number; max: number } | null
}

export interface CloseOptions {
  /** How long in-flight handlers may run on before their leases are given back. Default 10,000 ms. */
  graceMs?: number
}

type Handler = (input: any, ctx: TaskContext) => unknown

interface Running {
  task: ClaimedTask
  controller: AbortController
  leaseMs: number
  /** Set once the outcome is decided (or abandoned): a late result is then discarded. */
  settled: boolean
}

const DEFAULTS = { concurrency: 10, leaseMs: 30_000, pollIntervalMs: 1000 }
const ERROR_PAUSE_MS = 250

export class Worker {
  readonly id: string
  private readonly broker: Broker
  private readonly q: QueueInternals
  private readonly logger: Logger
  private readonly options: typeof DEFAULTS & { batchSize: number; backoff: Required<BackoffOptions> }
  private readonly handlers = new Map<string, { task: TaskDefinition<any, any>; fn: Handler }>()
  private readonly running = new Map<string, Running>()
  private readonly events: WorkerEmitter
  private readonly completions: Batcher<Completion, FencedOutcome>
  private readonly failures: Batcher<Failure, FencedOutcome>
  /** ctx.progress and ctx.log (issue 17). */
  private readonly outputs: TaskOutputs
  private stopController = new AbortController()
  private loopDone: Promise<void> | undefined
  private renewTimer: NodeJS.Timeout | undefined
  private slotWaiter: (() => void) | undefined
  private state: 'idle' | 'running' | 'closing' | 'closed' = 'idle'
  private readonly queueReady: () => Promise<void>
  private readonly gate: BreakerGate
  private readonly taskBreakers: boolean | 'per-tenant'
  private readonly heartbeat: Heartbeat
  private readonly loopWatch: EventLoopWatch
  private readonly heartbeatMs: number
  /** When `start()` began the loop (liveness counts from there). */
  private startedAt = 0
  /** When lease renewals last went through (or had nothing to renew). */
  private lastRenewalAt = 0
  private readonly autoscaler: Autoscaler | undefined
  private readonly autoscaleRange: { min: number; max: number } | null
  private readonly counters = { processed: 0, failed: 0, deferred: 0 }
  private lastBlockWarning = 0

  constructor(options: WorkerOptions) {
    if (!options?.queue?.[internals])
      throw new TaskloomError('INVALID_OPTIONS', 'createWorker needs a `queue`')
    const scaling =
      typeof options.concurrency === 'object' && options.concurrency !== null
        ? checkAutoscale(options.concurrency)
        : undefined
    const concurrency = scaling ? scaling.initial : ((options.concurrency as number) ?? DEFAULTS.concurrency)
    this.options = {
      concurrency,
      leaseMs: options.leaseMs ?? DEFAULTS.leaseMs,
      pollIntervalMs: options.pollIntervalMs ?? DEFAULTS.pollIntervalMs,
      batchSize: options.batchSize ?? Math.min(scaling ? scaling.max : concurrency, 1000),
      backoff: { ...BACKOFF_DEFAULTS, ...options.backoff },
    }
    checkWorkerOptions(this.options)
    const heartbeatMs = options.heartbeatMs ?? 10_000
    this.heartbeatMs = heartbeatMs
    const breakerCacheMs = options.breakerCacheMs ?? 1000
    const eventLoopBlockMs = options.eventLoopBlockMs ?? 500
    checkFleetOptions(heartbeatMs, breakerCacheMs, eventLoopBlockMs)
    this.queueReady = () => options.queue.ready()
    this.q = options.queue[internals]
    this.broker = this.q.broker
    this.id = options.id ?? `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`
    this.logger = childLogger(options.logger ?? this.q.logger, { worker_id: this.id })
    this.events = new WorkerEmitter(this.logger)
    this.completions = new Batcher((items) => this.broker.complete(items, Date.now()), { maxBatch: 500 })
    this.failures = new Batcher((items) => this.broker.fail(items, Date.now()), { maxBatch: 500 })
    this.outputs = new TaskOutputs(this.broker, this.q.output)
    this.taskBreakers = options.taskBreakers ?? false
    if (![true, false, 'per-tenant'].includes(this.taskBreakers)) {
      throw new TaskloomError('INVALID_OPTIONS', "taskBreakers must be true, false or 'per-tenant'", {
        issues: [{ path: 'taskBreakers', message: "expected true, false or 'per-tenant'" }],
      })
    }
    this.gate = new BreakerGate(
      this.broker,
      this.logger,
      { breakers: options.breakers === false ? {} : options.breakers, cacheMs: breakerCacheMs },
      () => {},
    )
    const startedAt = Date.now()
    this.heartbeat = new Heartbeat(
      this.broker,
      {
        id: this.id,
        heartbeatMs,
        startedAt,
        inHand: () => this.running.size,
        processed: () => this.counters.processed,
        concurrency: () => this.options.concurrency,
      },
      this.logger,
      (rows) => this.q.recordWorkers(rows),
      (workerId, tasks) => this.events.emit('worker:reaped', { workerId, tasks }),
      () => this.loopWatch.roll(),
    )
    this.loopWatch = new EventLoopWatch(Math.min(100, eventLoopBlockMs), eventLoopBlockMs, (blockedMs) =>
      this.reportBlocked(blockedMs, heartbeatMs),
    )
    this.autoscaleRange = scaling ? { min: scaling.min, max: scaling.max } : null
    this.autoscaler = scaling
      ? new Autoscaler(
          scaling,
          () => this.options.concurrency,
          async () => {
            const c = await this.broker.counts()
            return c.ready.critical + c.ready.high + c.ready.normal + c.ready.low
          },
          (d) => {
            this.options.concurrency = d.to
            this.slotWaiter?.()
            this.logger.info(
              { from: d.from, to: d.to, queue_depth: d.queueDepth, reason: d.reason },
              `autoscaler: concurrency ${d.from} -> ${d.to} (queue depth ${d.queueDepth})`,
            )
            this.events.emit('worker:scaled', d)
          },
          (error) => this.events.emit('worker:error', { error, stage: 'autoscale' }),
        )
      : undefined
  }

  /**
   * Whether this worker is alive for an orchestrator: heartbeats and lease renewals went through,
   * and the event loop was not blocked, within `thresholdMs` (see src/fleet/liveness.ts; serve it
   * with `livenessHandler(worker)`).
   */
  liveness(options?: LivenessOptions): LivenessReport {
    return judgeLiveness(
      {
        workerId: this.id,
        state: this.state,
        heartbeatMs: this.heartbeatMs,
        lastHeartbeatAt: Math.max(this.heartbeat.lastOkAt, this.startedAt),
        lastRenewalAt: Math.max(this.lastRenewalAt, this.startedAt),
        blockedMs: this.loopWatch.blockedMs,
      },
      options,
    )
  }

  /** What this worker is doing now, for dashboards and metrics. */
  stats(): WorkerStats {
    return {
      id: this.id,
      concurrency: this.options.concurrency,
      inFlight: this.running.size,
      processed: this.counters.processed,
      failed: this.counters.failed,
      deferred: this.counters.deferred,
      eventLoopBlockedMs: this.loopWatch.blockedMs,
      eventLoopDelayP99Ms: this.loopWatch.delayP99Ms,
      autoscale: this.autoscaleRange && { ...this.autoscaleRange },
    }
  }

  private reportBlocked(blockedMs: number, heartbeatMs: number): void {
    this.events.emit('worker:blocked', { blockedMs })
    const now = Date.now()
    if (now - this.lastBlockWarning < heartbeatMs) return
    this.lastBlockWarning = now
    this.logger.warn(
      { blocked_ms: blockedMs, in_flight: this.running.size },
      `event loop blocked for ${blockedMs} ms: a handler is doing synchronous work; leases, heartbeats and timeouts were late`,
    )
  }

  /**
   * Registers the handler of one task; its input is typed by the task's schema, and its return
   * value by the task's `output` schema when it has one.
   */
  handle<In, Out, Result, R extends Result>(
    task: TaskDefinition<In, Out, Result>,
    fn: (input: Out, ctx: TaskContext) => R | Promise<R>,
  ): this {
    if (!task || typeof task.name !== 'string')
      throw new TaskloomError('INVALID_OPTIONS', 'handle needs a task made by defineTask()')
    if (this.handlers.has(task.name)) {
      throw new TaskloomError('INVALID_OPTIONS', `a handler for task ${task.name} is already registered`)
    }
    this.handlers.set(task.name, { task, fn })
    return this
  }

  on<E extends WorkerEventName>(event: E, listener: (payload: WorkerEvents[E]) => void): () => void {
    return this.events.on(event, listener)
  }

  /** The name of the queue this worker serves. */
  get queueName(): string {
    return this.broker.queueName
  }

  /** Handlers running now. */
  get activeCount(): number {
    return this.running.size
  }

  /** Most handlers this worker runs at once. */
  get concurrency(): number {
    return this.options.concurrency
  }

  /** True from `start()` until `close()` begins. */
  get isRunning(): boolean {
    return this.state === 'running'
  }

  /**
   * Starts claiming once the queue is ready (its store open and, after a Redis loss, restored), so a
   * bad connection or an outdated schema fails here rather than in the loop. The loop runs until
   * `close()`.
   */
  async start(): Promise<void> {
    if (this.state !== 'idle')
      throw new TaskloomError('INVALID_OPTIONS', `worker ${this.id} was already started`)
    this.state = 'running'
    try {
      await this.queueReady()
    } catch (err) {
      this.state = 'idle'
      throw err
    }
    if (this.state !== 'running') return // closed while the queue was opening
    // Processes without the handler code (an API server) resolve task names from these records.
    await this.q.registerDefinitions([...this.handlers.values()].map((h) => h.task))
    this.startedAt = Date.now()
    const every = Math.max(Math.floor(this.options.leaseMs / 3), 10)
    this.renewTimer = setInterval(() => void this.renewLeases(), every)
    this.loopWatch.start()
    await this.heartbeat.start()
    this.autoscaler?.start()
    this.loopDone = this.loop()
    this.logger.info({ concurrency: this.options.concurrency }, 'worker started')
  }

  /**
   * Stops claiming, lets running handlers finish for up to `graceMs`, then aborts the rest and gives
   * their leases back at once, so other workers pick them up without waiting for the lease to expire.
   */
  async close(options: CloseOptions = {}): Promise<void> {
    const graceMs = options.graceMs ?? 10_000
    if (!Number.isInteger(graceMs) || graceMs < 0) {
      throw new TaskloomError('INVALID_OPTIONS', 'graceMs must be a non-negative integer of milliseconds')
    }
    if (this.state === 'closed' || this.state === 'closing') return
    const started = this.state === 'running'
    this.state = 'closing'
    this.stopController.abort()
    this.slotWaiter?.()
    await this.loopDone
    if (started) await this.waitForRunning(graceMs)
    const left = [...this.running.values()].filter((r) => !r.settled)
    for (const r of left) {
      r.settled = true
      r.controller.abort(new TaskloomError('CLOSED', 'the worker shut down before the task finished'))
    }
    clearInterval(this.renewTimer)
    await Promise.all([this.completions.drain(), this.failures.drain(), this.outputs.drain()])
    if (left.length > 0) {
      try {
        await this.broker.release(
          left.map((r) => ({ id: r.task.id, token: r.task.token })),
          Date.now(),
        )
      } catch (error) {
        this.events.emit('worker:error', { error, stage: 'release' })
      }
    }
    await this.autoscaler?.stop()
    this.loopWatch.stop()
    if (started) await this.heartbeat.stop()
    this.state = 'closed'
    this.logger.info({ released: left.length }, 'worker closed')
  }

  private async loop(): Promise<void> {
    const signal = this.stopController.signal
    while (!signal.aborted) {
      const free = this.options.concurrency - this.running.size
      if (free <= 0) {
        await new Promise<void>((resolve) => (this.slotWaiter = resolve))
        this.slotWaiter = undefined
        continue
      }
      const want = Math.min(free, this.options.batchSize)
      let claimed: ClaimedTask[]
      let nextWakeAt: number | null
      try {
        ;({ tasks: claimed, nextWakeAt } = await this.broker.claim(
          this.id,
          want,
          this.options.leaseMs,
          Date.now(),
        ))
      } catch (error) {
        if (signal.aborted) return
        this.events.emit('worker:error', { error, stage: 'claim' })
        // An unreachable Redis is logged once by its connection (lost, then restored), not per claim.
        const outage = error instanceof TaskloomError && error.code === 'BROKER_UNAVAILABLE'
        if (!outage) this.logger.error({ err: toErrorInfo(error) }, 'claim failed; retrying')
        else if (logEnabled(this.logger, 'debug'))
          this.logger.debug({ err: toErrorInfo(error) }, 'claim failed: Redis is unavailable; retrying')
        await sleep(ERROR_PAUSE_MS, signal)
        continue
      }
      if (claimed.length > 0 && logEnabled(this.logger, 'debug'))
        this.logger.debug({ claimed: claimed.length, wanted: want }, 'claimed tasks')
      for (const task of claimed) void this.execute(task)
      if (claimed.length < want && !signal.aborted) {
        // Nothing more is ready: sleep until woken by new work, the next due task, or the poll interval.
        const poll = this.options.pollIntervalMs
        const wait = nextWakeAt === null ? poll : Math.min(poll, Math.max(nextWakeAt - Date.now(), 0))
        if (wait > 0) await this.broker.waitForWork(wait, signal)
      }
    }
  }

  private async execute(task: ClaimedTask): Promise<void> {
    const r: Running = {
      task,
      controller: new AbortController(),
      leaseMs: this.options.leaseMs,
      settled: false,
    }
    this.running.set(task.id, r)
    const breaker = this.breakerOf(task)
    /** When this task is its breaker's half-open trial: the trial's deadline, which names it. */
    let trialUntil: number | undefined
    if (breaker !== undefined) {
      try {
        const admission = await this.gate.admit(breaker.name, breaker.settings)
        if (!admission.allowed) {
          this.running.delete(task.id)
          this.slotWaiter?.()
          r.settled = true
          return this.deferTask(task, breaker.name, admission.retryAt)
        }
        if (admission.trial) trialUntil = admission.trialUntil
      } catch (error) {
        // Redis trouble: run the task anyway; the claim and completion paths report the outage.
        this.events.emit('worker:error', { error, stage: 'breaker' })
      }
    }
    const started = Date.now()
    const timer = setTimeout(() => {
      r.controller.abort(new TaskTimeoutError(`task ${task.id} timed out after ${task.timeoutMs} ms`))
    }, task.timeoutMs)
    this.events.emit('task:started', { task })
    if (logEnabled(this.logger, 'debug')) {
      this.logger.debug(
        {
          task_id: task.id,
          tenant_id: task.tenantId,
          task_type: task.name,
          retry_count: task.attempt - 1,
          queue_wait_ms: started - (task.attempt === 1 ? task.createdAt : task.runAt),
        },
        `task ${task.name} started`,
      )
    }
    const spans = startTaskSpans(this.broker.queueName, this.id, task)
    let result: unknown
    let error: unknown
    let failed = false
    try {
      result = await spans.run(() => this.invoke(task, r))
    } catch (err) {
      failed = true
      error = err
    } finally {
      clearTimeout(timer)
      // The slot frees as soon as the handler is done; the outcome is acknowledged in a batch.
      this.running.delete(task.id)
      this.slotWaiter?.()
    }
    if (r.settled) {
      // Abandoned (lease lost, or handed back at close): no verdict on the breaker, but a trial
      // must not keep the fleet waiting for its deadline.
      if (breaker !== undefined && trialUntil !== undefined)
        void this.reportBreaker(breaker, 'none', trialUntil)
      return spans.end(error ?? new LeaseLostError('the attempt was abandoned'))
    }
    r.settled = true
    // Its progress and log lines are written before its outcome (after it, they would be refused).
    const outputs = this.outputs.flushed(task.id)
    if (outputs) await outputs
    // A result that cannot be encoded fails the attempt (the handler's bug, not its dependency's).
    let encoded: string | undefined
    if (!failed) {
      try {
        encoded = this.q.encode(result, task.name)
      } catch (err) {
        failed = true
        error = Object.assign(err as object, { outcome: 'error' })
      }
    }
    if (breaker !== undefined)
      void this.reportBreaker(breaker, failed ? verdictOf(error) : 'success', trialUntil)
    if (failed) {
      const durationMs = Date.now() - started
      if (error instanceof BreakerOpenError) {
        // `ctx.breaker(name).run` refused: the task waits for the breaker; the attempt is not spent.
        await spans.settle('deferred', () => this.deferTask(task, error.breaker, error.retryAt))
        return spans.end()
      }
      if (error instanceof RateLimitedError) {
        await spans.settle('deferred', () => this.rateLimited(task, error))
        return spans.end()
      }
      await spans.settle('failed', () => this.recordFailure(task, error, durationMs))
      return spans.end(error)
    }
    await spans.settle('completed', () => this.finish(task, result, encoded!, started))
    spans.end()
  }

  /** Acknowledges a handler's (encoded) result. */
  private async finish(task: ClaimedTask, result: unknown, encoded: string, started: number): Promise<void> {
    const durationMs = Date.now() - started
    try {
      const outcome = await this.completions.add({ id: task.id, token: task.token, result: encoded })
      if (outcome === 'stale') {
        this.logger.warn(
          logFields(task, durationMs),
          `task ${task.name} finished after its lease was lost; its result was discarded`,
        )
        this.events.emit('task:stale', { task, stage: 'complete' })
      } else {
        this.counters.processed += 1
        if (logEnabled(this.logger, 'info'))
          this.logger.info(logFields(task, durationMs), `task ${task.name} completed`)
        this.events.emit('task:completed', { task, result, durationMs })
      }
    } catch (err) {
      this.events.emit('worker:error', { error: err, stage: 'complete' })
    }
  }

  /** Runs the handler; rejects with the handler's error, or the abort reason if the signal fires first. */
  private async invoke(task: ClaimedTask, r: Running): Promise<unknown> {
    const handler = this.handlers.get(task.name)
    if (!handler)
      throw Object.assign(new Error(`no handler for task ${task.name} on worker ${this.id}`), {
        outcome: 'no-handler',
      })
    let input: unknown
    try {
      input = checkInput(handler.task, this.q.decode(task.payload))
    } catch (err) {
      throw Object.assign(new NonRetryableError((err as Error).message), { outcome: 'invalid-input' })
    }
    const signal = r.controller.signal
    let logger: Logger | undefined
    const parent = this.logger
    const ctx: TaskContext = {
      taskId: task.id,
      attempt: task.attempt,
      tenantId: task.tenantId,
      fencingToken: task.token,
      signal,
      extendLease: (ms) => this.extendOne(r, ms),
      breaker: (name, options) => this.gate.handle(name, options?.perTenant ? task.tenantId : undefined),
      schedule: scheduleOfKey(task.idempotencyKey),
      ...this.outputs.context(task),
      ...dependencyReads(this.q, this.broker, task.id),
      rateLimit: (ms, options) => {
        throw new RateLimitedError({ retryAfterMs: ms, scope: options?.scope })
      },
      // Made on first use: most handlers never log, and a child logger per task is measurable.
      get logger() {
        logger ??= childLogger(parent, { task_id: task.id, tenant_id: task.tenantId })
        return logger
      },
    }
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(signal.reason)
      if (signal.aborted) return onAbort()
      signal.addEventListener('abort', onAbort, { once: true })
      Promise.resolve()
        .then(() => handler.fn(input, ctx))
        .then((result) => checkOutput(handler.task, result))
        .then(resolve, reject)
        .finally(() => signal.removeEventListener('abort', onAbort))
    })
  }

  /**
   * Counts the outcome towards the task's breaker. An attempt that says nothing about the dependency
   * (`none`) still ends a half-open trial, so the next task may try at once.
   */
  private async reportBreaker(
    breaker: { name: string; settings: string },
    verdict: BreakerVerdict,
    trialUntil?: number,
  ): Promise<void> {
    const { name, settings } = breaker
    try {
      if (verdict === 'success') await this.gate.success(name, trialUntil !== undefined, settings)
      else if (verdict === 'failure') await this.gate.failure(name, settings)
      else if (trialUntil !== undefined) await this.gate.release(name, trialUntil, settings)
    } catch (err) {
      this.events.emit('worker:error', { error: err, stage: 'breaker' })
    }
  }

  /**
   * The breaker a task's runs count towards: its definition's, else one per task name when
   * `taskBreakers` is on, else none. `settings` is the name its settings are kept under.
   */
  private breakerOf(task: ClaimedTask): { name: string; settings: string } | undefined {
    const def = this.handlers.get(task.name)?.task
    const base = def?.breaker ?? (this.taskBreakers ? task.name : undefined)
    if (base === undefined) return undefined
    const perTenant =
      def?.breaker !== undefined ? def.breakerPerTenant === true : this.taskBreakers === 'per-tenant'
    return { name: perTenant ? tenantBreaker(base, task.tenantId) : base, settings: base }
  }

  /** Gives the task back unrun until `runAt` (the task shows `deferredBy`); the attempt does not count. */
  private async deferTask(task: ClaimedTask, breaker: string, runAt: number): Promise<void> {
    try {
      const [outcome] = await this.broker.defer(
        [{ id: task.id, token: task.token }],
        runAt,
        Date.now(),
        breaker,
      )
      if (outcome === 'stale') return this.events.emit('task:stale', { task, stage: 'fail' })
      this.counters.deferred += 1
      this.logger.debug(
        { task_id: task.id, breaker, run_at: new Date(runAt).toISOString() },
        `task ${task.name} deferred: circuit breaker ${breaker} is open`,
      )
      this.events.emit('task:deferred', { task, breaker, runAt })
    } catch (err) {
      this.events.emit('worker:error', { error: err, stage: 'defer' })
    }
  }

  /** The handler was throttled upstream: the task goes back and its scope waits (src/flow). */
  private async rateLimited(task: ClaimedTask, error: RateLimitedError): Promise<void> {
    try {
      const throttled = await throttleTask(this.broker, task, error)
      if (!throttled) return this.events.emit('task:stale', { task, stage: 'fail' })
      this.logger.debug(
        { task_id: task.id, scope: throttled.scope, until: new Date(throttled.until).toISOString() },
        `task ${task.name} rate-limited upstream; its ${throttled.scope.kind} waits`,
      )
      this.events.emit('task:rate-limited', { task, ...throttled })
    } catch (err) {
      this.events.emit('worker:error', { error: err, stage: 'defer' })
    }
  }

  private async recordFailure(task: ClaimedTask, error: unknown, durationMs: number): Promise<void> {
    const info = toErrorInfo(error)
    const outcome: AttemptOutcome =
      (error as { outcome?: AttemptOutcome } | null)?.outcome ??
      (error instanceof TaskTimeoutError ? 'timeout' : 'error')
    const final = error instanceof NonRetryableError || task.attempt > task.maxRetries
    const retryAt = final ? null : Date.now() + backoffDelay(task.attempt, this.options.backoff)
    try {
      const applied = await this.failures.add({
        id: task.id,
        token: task.token,
        error: info,
        outcome,
        retryAt,
      })
      if (applied === 'stale') return this.events.emit('task:stale', { task, stage: 'fail' })
    } catch (err) {
      this.events.emit('worker:error', { error: err, stage: 'fail' })
      return
    }
    this.counters.failed += 1
    const fields = { ...logFields(task, durationMs), attempt: task.attempt, err: info, outcome }
    if (final) this.logger.error(fields, `task ${task.name} failed for good; moved to the dead-letter queue`)
    else
      this.logger.warn(
        { ...fields, retry_at: new Date(retryAt!).toISOString() },
        `task ${task.name} failed; will retry`,
      )
    this.events.emit('task:failed', { task, error: info, willRetry: !final, retryAt, durationMs })
  }

  private async extendOne(r: Running, ms: number): Promise<void> {
    if (!Number.isInteger(ms) || ms < 1 || ms > 86_400_000)
      throw new TaskloomError(
        'INVALID_OPTIONS',
        'extendLease needs an integer of milliseconds from 1 to 86400000',
      )
    if (r.settled) throw new LeaseLostError(`task ${r.task.id} is no longer held by this worker`)
    r.leaseMs = ms
    const [outcome] = await this.broker.extend([{ id: r.task.id, token: r.task.token }], ms, Date.now())
    if (outcome === 'stale') {
      this.loseLease(r)
      throw new LeaseLostError(`task ${r.task.id}: the lease was lost`)
    }
  }

  /** One round trip per lease length (usually one) renews every running task's lease. */
  private async renewLeases(): Promise<void> {
    const groups = new Map<number, Running[]>()
    for (const r of this.running.values()) {
      if (r.settled) continue
      const group = groups.get(r.leaseMs)
      if (group) group.push(r)
      else groups.set(r.leaseMs, [r])
    }
    const began = Date.now()
    let failed = false
    for (const [leaseMs, group] of groups) {
      try {
        const outcomes = await this.broker.extend(
          group.map((r) => ({ id: r.task.id, token: r.task.token })),
          leaseMs,
          Date.now(),
        )
        outcomes.forEach((o, i) => {
          if (o === 'stale') this.loseLease(group[i]!)
        })
      } catch (error) {
        failed = true
        this.events.emit('worker:error', { error, stage: 'extend' })
      }
    }
    if (!failed) this.lastRenewalAt = Math.max(this.lastRenewalAt, began)
  }

  private loseLease(r: Running): void {
    if (r.settled) return
    r.settled = true
    r.controller.abort(new LeaseLostError(`task ${r.task.id}: the lease was lost to another worker`))
    this.logger.warn(
      {
        task_id: r.task.id,
        tenant_id: r.task.tenantId,
        task_type: r.task.name,
        retry_count: r.task.attempt - 1,
      },
      'lease lost; the outcome of this attempt will be discarded',
    )
    this.events.emit('task:stale', { task: r.task, stage: 'extend' })
  }

  private async waitForRunning(graceMs: number): Promise<void> {
    const deadline = Date.now() + graceMs
    while (this.running.size > 0 && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(50, deadline - Date.now()))
        this.slotWaiter = () => {
          clearTimeout(t)
          resolve()
        }
      })
    }
  }
}

/** Creates a worker for a queue. Register handlers with `handle`, then `start()`. */
export function createWorker(options: WorkerOptions): Worker {
  return new Worker(options)
}

function checkWorkerOptions(o: Worker['options']): void {
  const bad: string[] = []
  const int = (v: number, min: number, max: number) => Number.isInteger(v) && v >= min && v <= max
  if (!int(o.concurrency, 1, 100_000)) bad.push('concurrency must be an integer from 1 to 100000')
  if (!int(o.leaseMs, 100, 86_400_000)) bad.push('leaseMs must be an integer from 100 to 86400000')
  if (!int(o.batchSize, 1, 10_000)) bad.push('batchSize must be an integer from 1 to 10000')
  if (!int(o.pollIntervalMs, 1, 60_000)) bad.push('pollIntervalMs must be an integer from 1 to 60000')
  const b = o.backoff
  if (!int(b.baseMs, 0, 86_400_000) || !int(b.maxMs, 0, 86_400_000) || !(b.jitter >= 0 && b.jitter <= 1)) {
    bad.push('backoff needs integer baseMs and maxMs (0-86400000) and a jitter from 0 to 1')
  }
  if (bad.length > 0) {
    throw new TaskloomError('INVALID_OPTIONS', `invalid worker options: ${bad.join('; ')}`, {
      issues: bad.map((message) => ({ path: 'options', message })),
    })
  }
}

function checkFleetOptions(heartbeatMs: number, breakerCacheMs: number, eventLoopBlockMs: number): void {
  const bad: string[] = []
  const int = (v: number, min: number, max: number) => Number.isInteger(v) && v >= min && v <= max
  if (!int(heartbeatMs, 10, 3_600_000)) bad.push('heartbeatMs must be an integer from 10 to 3600000')
  if (!int(breakerCacheMs, 0, 60_000)) bad.push('breakerCacheMs must be an integer from 0 to 60000')
  if (!int(eventLoopBlockMs, 10, 3_600_000))
    bad.push('eventLoopBlockMs must be an integer from 10 to 3600000')
  if (bad.length > 0) {
    throw new TaskloomError('INVALID_OPTIONS', `invalid worker options: ${bad.join('; ')}`, {
      issues: bad.map((message) => ({ path: 'options', message })),
    })
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms)
    signal.addEventListener('abort', done, { once: true })
    function done() {
      clearTimeout(t)
      signal.removeEventListener('abort', done)
      resolve()
    }
  })
}

type BreakerVerdict = 'success' | 'failure' | 'none'

/** The fields every task log line carries (built only when a line is written). */
function logFields(task: ClaimedTask, durationMs: number) {
  return {
    task_id: task.id,
    tenant_id: task.tenantId,
    task_type: task.name,
    duration_ms: durationMs,
    retry_count: task.attempt - 1,
  }
}

/**
 * Handler errors and timeouts count against the breaker. A NonRetryableError, bad input, a missing
 * handler, a lost lease, a closing worker or a breaker refusal say nothing about the dependency.
 */
function verdictOf(error: unknown): BreakerVerdict {
  if (
    error instanceof NonRetryableError ||
    error instanceof BreakerOpenError ||
    error instanceof RateLimitedError ||
    error instanceof LeaseLostError ||
    (error instanceof TaskloomError && error.code === 'CLOSED') ||
    (error as { outcome?: string } | null)?.outcome !== undefined
  )
    return 'none'
  return 'failure'
}

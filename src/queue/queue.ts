/**
 * `createQueue`: submit, inspect, cancel and dead-letter handling for one named queue. In durable
 * mode it also coordinates the broker with the store: rows are written before the broker sees a
 * task, the change feed is drained into the store, and recovery restores what Redis loses.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import type { Broker, EnqueueResult, NewTask, QueueCounts, TaskRecord } from '../broker/broker.js'
import { MemoryBroker } from '../broker/memory/memory-broker.js'
import { RedisBroker } from '../broker/redis/redis-broker.js'
import type { Definitions } from '../definitions/definitions.js'
import { Recovery } from '../durable/recovery.js'
import { StoreSync } from '../durable/store-sync.js'
import { TaskloomError } from '../errors.js'
import { type BreakerHandle, breakerHandle } from '../fleet/breakers.js'
import { acquireLock, type Lock, type LockOptions, withLock } from '../fleet/locks.js'
import { listWorkers, type WorkerInfo } from '../fleet/workers.js'
import { createJsonLogger, type Logger, logEnabled } from '../logger.js'
import { traceSubmit } from '../observability/tracing.js'
import { attachSchedules, type QueueExtras } from '../schedule/attach.js'
import type { Schedules } from '../schedule/schedules.js'
import { openPostgresStore, type PostgresStore } from '../store/postgres/postgres-store.js'
import type { ListFilter, Store } from '../store/store.js'
import type { TaskDefinition } from '../task/define-task.js'
import { TASK_STATUSES, type TaskChange, type TaskStatus, TERMINAL_STATUSES } from '../task/model.js'
import { checkInput, checkOptions, type SubmitOptions } from '../task/validate.js'
import { Batcher } from '../util/batcher.js'
import { orTimeout } from '../util/or-timeout.js'
import { uuidV7 } from '../util/uuid-v7.js'
import { type Codec, createCodec } from './codec.js'
import { internals, type QueueInternals } from './internal.js'
import { checkQueueOptions, type QueueOptions, type QueueSettings } from './options.js'
import { type TaskInfo, toTaskInfo } from './task-info.js'

export type { QueueOptions } from './options.js'

/** One entry of `submitMany`. */
export interface SubmitEntry<In = unknown, Out = In> {
  task: TaskDefinition<In, Out>
  input: In
  options?: SubmitOptions
}

export interface SubmitResult {
  id: string
  status: TaskInfo['status']
  createdAt: Date
  /** True when the idempotency key matched an existing task (whose id this is). */
  deduplicated: boolean
  /** Set when the submit had a `schedule`: the schedule created (`id` is the schedule's id too). */
  scheduleId?: string
}

export interface ListPage<T> {
  tasks: T[]
  total: number
  limit: number
  offset: number
  /** Pass as `cursor` for the next page; null on the last one (`queue.list` only). */
  nextCursor?: string | null
}

export interface ListOptions {
  status?: TaskStatus | readonly TaskStatus[]
  tenantId?: string
  name?: string
  /** Default 50, at most 1000. */
  limit?: number
  offset?: number
  cursor?: string
}

export interface TaskResult<Result = unknown> {
  id: string
  status: TaskStatus
  result: Result | null
  error: TaskInfo['error'] | null
}

/**
 * How long a cancel or a DLQ retry waits for its change to be written to the store (durable mode).
 * The change feed records it regardless; this only bounds the wait when PostgreSQL is slow or down.
 */
const WRITE_THROUGH_MS = 2000

/** The change retry-dead.lua puts on the feed for a task it sends back from the DLQ. */
function revived(id: string, now: number): TaskChange {
  return { id, status: 'queued', attempt: 0, at: now, runAt: now, revive: true }
}

/** How long a durable submit waits for the broker after the row is stored; reconciliation does the rest. */
const BROKER_HANDOFF_MS = 5000

export class Queue {
  readonly name: string
  readonly [internals]: QueueInternals
  private readonly broker: Broker
  private readonly options: QueueSettings
  private readonly logger: Logger
  private readonly codec: Codec
  private readonly submits: Batcher<NewTask, EnqueueResult>
  private store: PostgresStore | undefined
  private sync: StoreSync | undefined
  private recovery: Recovery | undefined
  private readonly opening: Promise<void>
  private closed = false
  private readonly extras: QueueExtras

  /** Cron schedules of this queue (kept in the store; fired by `createScheduler`). */
  readonly schedules: Schedules
  /** Task definitions registered by workers, read through a cache (TTL `definitionCacheTtlMs`). */
  readonly definitions: Definitions

  /** Dead-letter queue: tasks whose retries are exhausted. */
  readonly dlq = {
    /** Most recently dead first. */
    list: async (page: { limit?: number; offset?: number } = {}): Promise<ListPage<TaskInfo>> => {
      const { limit, offset } = checkPage(page)
      await this.ready()
      const { items, total } = await this.broker.listDead(limit, offset)
      return { tasks: items.map((r) => this.info(r)), total, limit, offset }
    },
    /** Puts a dead task back in the queue with a fresh attempt budget. */
    retry: async (id: string): Promise<void> => {
      await this.ready()
      const now = Date.now()
      let moved = await this.broker.retryDead([id], now)
      // The store may have it dead while the broker does not (Redis lost or rolled back its DLQ and
      // the re-base has not reached it yet): the stored copy is put back in the DLQ, then retried.
      if (moved === 0 && (await this.recovery?.restoreDead(id)))
        moved = await this.broker.retryDead([id], now)
      if (moved === 0) throw new TaskloomError('NOT_IN_DLQ', `task ${id} is not in the dead-letter queue`)
      await this.recordChanges([revived(id, now)])
      this.logger.info({ task_id: id }, 'task put back from the dead-letter queue')
    },
    /** Puts every dead task back; answers how many moved. */
    retryAll: async (): Promise<number> => {
      await this.ready()
      let total = 0
      for (;;) {
        const now = Date.now()
        const moved = await this.broker.retryAllDead(1000, now)
        await this.recordChanges(moved.map((id) => revived(id, now)))
        total += moved.length
        if (moved.length < 1000) {
          this.logger.info({ tasks: total }, 'dead-letter queue put back')
          return total
        }
      }
    },
  }

  constructor(options: QueueOptions) {
    this.options = checkQueueOptions(options)
    this.name = options.name
    this.logger = options.logger ?? createJsonLogger({ service: 'taskloom' })
    this.codec = createCodec(this.name, options.encryption)
    const durable = options.postgres !== undefined ? options.postgres !== false : options.redis === undefined
    const brokerOptions = { retentionMs: this.options.retentionMs, changeFeed: durable, fenced: durable }
    this.broker =
      options.broker ??
      (options.redis === undefined
        ? new MemoryBroker(this.name, brokerOptions)
        : new RedisBroker(this.name, { redis: options.redis, ...brokerOptions }))
    this.extras = attachSchedules({
      name: this.name,
      redis: options.redis,
      store: async (what) => {
        this.assertOpen()
        await this.ready()
        if (!this.store)
          throw new TaskloomError('INVALID_STATE', `${what} need a store: pass \`postgres\` to createQueue`)
        return this.store
      },
      hasStore: async () => {
        await this.ready()
        return this.store !== undefined
      },
      write: (rows) => this.write(rows),
      encode: (value, taskName) => this.codec.encode(value, taskName),
      decode: (text) => this.codec.decode(text),
      defaultTenantId: this.options.defaultTenantId,
      idempotencyTtlMs: this.options.idempotencyTtlMs,
      definitionCacheTtlMs: options.definitionCacheTtlMs ?? 300_000,
      logger: this.logger,
    })
    this.schedules = this.extras.schedules
    this.definitions = this.extras.definitions
    this[internals] = {
      broker: this.broker,
      logger: this.logger,
      encode: (value, taskName) => this.codec.encode(value, taskName),
      decode: (text) => this.codec.decode(text),
      scheduling: this.extras.scheduling,
      registerDefinitions: (tasks) => this.extras.registerDefinitions(tasks),
      recordWorkers: async (rows) => {
        await this.ready()
        await this.store?.recordWorkers(rows)
      },
      submitted: new Set(),
      redis: this.broker instanceof RedisBroker ? this.broker.client : undefined,
      store: () => this.store,
    }
    this.submits = new Batcher((tasks) => this.write(tasks), {
      maxBatch: this.options.maxSubmitBatch,
      concurrency: 2,
    })
    this.opening = durable ? this.openStore(options) : Promise.resolve()
    // A failed open surfaces from ready() and every call; never as an unhandled rejection.
    this.opening.catch(() => {})
  }

  /**
   * Resolves once the queue can serve: the store is open with a current schema, and a Redis that
   * lost its data has been restored. Every method waits for it; call it to fail fast at startup.
   */
  ready(): Promise<void> {
    return this.opening
  }

  /**
   * Validates and submits one task. Concurrent submits share one round trip. In durable mode it
   * resolves once the task is stored in PostgreSQL: from then on it will run.
   * @example
   * const { id } = await queue.submit(sendEmail, { to: 'a@b.co', subject: 'hi' }, { priority: 'high' })
   */
  async submit<In, Out>(
    task: TaskDefinition<In, Out>,
    input: In,
    options?: SubmitOptions,
  ): Promise<SubmitResult> {
    if (options?.schedule !== undefined) return this.submitSchedule(task, input, options)
    const row = this.prepare(task, input, options, 'input', 'options')
    await this.ready()
    return toSubmitResult(await traceSubmit(this.name, [row], () => this.submits.add(row)))
  }

  /**
   * Submits by task name, for processes without the task's code (an API server): the definition a
   * worker registered validates the input and supplies the defaults. UNKNOWN_TASK when none did.
   */
  async submitByName(name: string, input: unknown, options?: SubmitOptions): Promise<SubmitResult> {
    this.assertOpen()
    const task = await this.definitions.resolve(name)
    if (!task) {
      throw new TaskloomError(
        'UNKNOWN_TASK',
        `unknown task ${JSON.stringify(name)}: no worker registered it`,
        {
          issues: [{ path: 'name', message: 'unknown task name' }],
        },
      )
    }
    return this.submit(task, input, options)
  }

  /**
   * `submit` with a `schedule`: creates the schedule. Its id is `<tenant>:<idempotency key>` when a
   * key is given (a repeat answers the existing schedule), else a new uuid.
   */
  private async submitSchedule(
    task: TaskDefinition<any, any>,
    input: unknown,
    rawOptions: SubmitOptions,
  ): Promise<SubmitResult> {
    this.assertOpen()
    const options = checkOptions(rawOptions, 'options')
    const tenantId = options.tenantId ?? this.options.defaultTenantId
    // The key is scoped to the tenant, as task idempotency keys are: `<tenant>:<key>`.
    const id = options.idempotencyKey === undefined ? randomUUID() : `${tenantId}:${options.idempotencyKey}`
    // Create-if-absent: a repeat (even a concurrent one) answers the schedule the first call made.
    const { schedule, created } = await this.schedules.create({
      id,
      cron: options.schedule!,
      task,
      input,
      tenantId,
      options: {
        priority: options.priority,
        maxRetries: options.maxRetries,
        timeoutMs: options.timeoutMs,
        lockKey: options.lockKey,
      },
    })
    return { id, scheduleId: id, status: 'pending', createdAt: schedule.createdAt, deduplicated: !created }
  }

  /** Validates every entry first (nothing is submitted if one is bad), then submits in batches. */
  async submitMany(entries: readonly SubmitEntry<any, any>[]): Promise<SubmitResult[]> {
    if (!Array.isArray(entries)) throw new TaskloomError('INVALID_INPUT', 'submitMany takes an array')
    const rows = entries.map((e, i) =>
      this.prepare(e.task, e.input, e.options, `[${i}].input`, `[${i}].options`),
    )
    await this.ready()
    return traceSubmit(this.name, rows, async () => {
      const out: SubmitResult[] = []
      for (let i = 0; i < rows.length; i += this.options.maxSubmitBatch) {
        const results = await this.write(rows.slice(i, i + this.options.maxSubmitBatch))
        out.push(...results.map(toSubmitResult))
      }
      return out
    })
  }

  /**
   * The task's current state, or null when unknown: live from the broker while it holds the task,
   * else from the store (durable mode), where finished tasks stay for `recordRetentionMs`.
   * With a store, a finished status is shown once the store has it too (until then the task reads
   * as still `processing`), and a broker not yet re-based answers nothing (the store is read), so a
   * reader never sees a task go from finished back to unfinished, whatever Redis loses.
   */
  async get<Result = unknown>(id: string): Promise<TaskInfo<Result> | null> {
    this.assertOpen()
    await this.ready()
    const live = await this.broker.get(id)
    const store = this.store
    if (live && store && TERMINAL_STATUSES.has(live.status)) {
      // A finished status is shown once the store has it: until then (also while PostgreSQL is
      // unreachable) it could still be lost with Redis, and the task run again.
      const stored = await store.get(id).catch(() => undefined)
      if (stored?.status !== live.status) {
        const { result: _result, finishedAt: _finishedAt, ...attempt } = live
        return this.info<Result>({ ...attempt, status: 'processing' })
      }
    }
    if (live) return this.info<Result>(live)
    const stored = store ? await this.fromStore(() => store.get(id)) : null
    return stored ? this.info<Result>(stored) : null
  }

  /** The outcome of a task: its result once completed, its last error once failed. */
  async result<Result = unknown>(id: string): Promise<TaskResult<Result> | null> {
    const task = await this.get<Result>(id)
    if (!task) return null
    return { id, status: task.status, result: task.result ?? null, error: task.error ?? null }
  }

  /**
   * Tasks from the store, newest first, with live status for those still in flight. Needs a store
   * (durable or embedded mode).
   */
  async list(options: ListOptions = {}): Promise<ListPage<TaskInfo>> {
    this.assertOpen()
    const filter = checkList(options)
    await this.ready()
    const store = this.store
    if (!store)
      throw new TaskloomError('INVALID_STATE', 'queue.list needs a store: pass `postgres` to createQueue')
    const page = await this.fromStore(() => store.list(filter))
    const tasks = await Promise.all(
      page.items.map(async (row) => {
        if (TERMINAL_STATUSES.has(row.status)) return this.info(row)
        return this.info((await this.broker.get(row.id)) ?? row)
      }),
    )
    return {
      tasks,
      total: page.total,
      limit: filter.limit ?? 50,
      offset: filter.offset ?? 0,
      nextCursor: page.nextCursor,
    }
  }

  /**
   * Cancels a pending or queued task. A processing task cannot be cancelled (TASK_PROCESSING);
   * a finished one neither (TASK_FINISHED); an unknown id is NOT_FOUND.
   */
  async cancel(id: string): Promise<TaskInfo> {
    this.assertOpen()
    await this.ready()
    const now = Date.now()
    const record = await this.broker.cancel(id, now)
    // The change cancel.lua put on the feed, written through at once.
    await this.recordChanges([{ id, status: 'cancelled', attempt: record.attempt, at: now }])
    const cancelled = this.info(record)
    this.logger.info(
      { task_id: id, tenant_id: cancelled.tenantId, task_type: cancelled.name },
      'task cancelled',
    )
    return cancelled
  }

  /**
   * Takes the distributed lock `key` (shared by every process on this queue's broker), with a
   * fencing token that grows with every acquisition of the key. LOCK_BUSY when it is held (after
   * waiting up to `waitMs`).
   */
  async lock(key: string, options?: LockOptions): Promise<Lock> {
    this.assertOpen()
    await this.ready()
    return acquireLock(this.broker, key, options)
  }

  /** Runs `fn` holding the lock `key`; the lock is released on every path. */
  async withLock<T>(key: string, fn: (lock: Lock) => T | Promise<T>, options?: LockOptions): Promise<T> {
    this.assertOpen()
    await this.ready()
    return withLock(this.broker, key, fn, options)
  }

  /** A circuit breaker's shared state (per task name, or a named one such as 'smtp'). */
  breaker(name: string): BreakerHandle {
    this.assertOpen()
    return breakerHandle(this.broker, name)
  }

  /** Every worker of this queue that heartbeated lately, silent ones as UNHEALTHY. */
  async workers(): Promise<WorkerInfo[]> {
    this.assertOpen()
    await this.ready()
    return listWorkers(this.broker, Date.now())
  }

  /** Tasks waiting, scheduled, running and dead. */
  async counts(): Promise<QueueCounts> {
    this.assertOpen()
    await this.ready()
    return this.broker.counts()
  }

  /**
   * Flushes pending submits and the change feed, then closes the connections the queue opened.
   * Close the workers of this queue first.
   */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.opening.catch(() => {})
    await this.submits.drain()
    await this.recovery?.stop()
    await this.sync?.stop()
    try {
      await this.sync?.flush()
    } catch (err) {
      this.logger.warn({ err }, 'could not flush the change feed at close; another process will')
    }
    await this.broker.close()
    await this.extras.close()
    await this.store?.close()
  }

  private async openStore(options: QueueOptions): Promise<void> {
    const store = await openPostgresStore({
      postgres: options.postgres === false ? undefined : options.postgres,
      queue: this.name,
      schema: options.postgresSchema,
      migrate: options.migrate,
      max: options.postgresPool?.max,
      connectionTimeoutMs: options.postgresPool?.connectionTimeoutMs,
      auditStatusChanges: options.auditStatusChanges,
    })
    this.store = store
    if (this.broker instanceof MemoryBroker && !(await store.holdExclusive())) {
      await store.close()
      throw new TaskloomError(
        'QUEUE_IN_USE',
        `queue ${this.name} is already open in another process on the in-process broker; ` +
          'to share a queue between processes, give every one of them the same `redis`',
      )
    }
    const consumer = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`
    this.sync = new StoreSync(this.broker, store, consumer, this.logger)
    this.recovery = new Recovery(
      this.broker,
      store,
      this.logger,
      options.recovery ?? {},
      this.options.recordRetentionMs,
      this.options.idempotencyTtlMs,
    )
    await this.recovery.start()
    this.sync.start()
  }

  /** Durable: store first (the acknowledgement), then the broker. Otherwise the broker alone. */
  private async write(rows: (NewTask & { schedule?: string })[]): Promise<EnqueueResult[]> {
    const results = await this.writeRows(rows)
    for (const listener of this[internals].submitted) {
      try {
        listener(rows, results)
      } catch {
        // An observer never fails a submit.
      }
    }
    if (logEnabled(this.logger, 'info')) {
      rows.forEach((row, i) => {
        const r = results[i]
        if (!r) return
        const fields = { task_id: r.id, tenant_id: row.tenantId, task_type: row.name, priority: row.priority }
        if (r.deduplicated) this.logger.debug(fields, `task ${row.name} deduplicated by its idempotency key`)
        else this.logger.info({ ...fields, status: r.status }, `task ${row.name} submitted`)
      })
    }
    return results
  }

  private async writeRows(rows: (NewTask & { schedule?: string })[]): Promise<EnqueueResult[]> {
    const store = this.store
    if (!store) return this.broker.enqueue(rows, Date.now())
    const stored = await this.fromStore(() => store.insertTasks(rows))
    // The store alone judges idempotency keys; the broker gets only the new tasks, by id.
    const fresh = rows.filter((row, i) => !stored[i]!.deduplicated && stored[i]!.id === row.id)
    if (fresh.length > 0) await this.handOff(fresh)
    return stored.map((s) => ({
      id: s.id,
      status: s.status,
      createdAt: s.createdAt,
      deduplicated: s.deduplicated,
    }))
  }

  /**
   * Gives stored tasks to the broker. If the broker is slow or down the submit still succeeds (the
   * row is the acknowledgement); reconciliation enqueues whatever the broker did not confirm.
   * Nothing is written back to the store here: the broker's first change for the task (its claim)
   * sets `enqueued_at`, and reconciliation confirms rows the broker already holds without enqueuing
   * them twice. A second UPDATE of the same rows on the submit path raced the change feed's UPDATE
   * for row locks (see docs/benchmarks.md).
   */
  private async handOff(rows: NewTask[]): Promise<void> {
    const now = Date.now()
    // The store judged the keys; the broker keeps the key only to show it (a TTL of 0 maps nothing).
    const enqueue = this.broker.enqueue(
      rows.map((r) => ({ ...r, idempotencyTtlMs: 0 })),
      now,
    )
    enqueue.catch((err: unknown) => {
      this.logger.warn(
        { err, tasks: rows.length },
        'handing stored tasks to the broker failed; reconciliation will',
      )
    })
    await orTimeout(
      enqueue.catch(() => {}),
      BROKER_HANDOFF_MS,
    )
  }

  /**
   * Durable mode: writes admin changes (a cancel, DLQ retries) to the store at once, the same
   * changes the broker put on the feed, so a list right after the call shows them whichever process
   * reads the feed. The feed's copies arrive later and change nothing (a replay never moves a task
   * back). A store that is down or slow only delays them: the feed still delivers them.
   */
  private async recordChanges(changes: TaskChange[]): Promise<void> {
    const store = this.store
    if (!store || changes.length === 0) return
    const written = store.applyUpdates(changes).catch((err: unknown) => {
      this.logger.warn(
        { err, tasks: changes.length },
        'writing changes to the store failed; the change feed will',
      )
    })
    await orTimeout(written, WRITE_THROUGH_MS)
  }

  private async fromStore<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call()
    } catch (err) {
      if (err instanceof TaskloomError) throw err
      // SQLSTATE class 22 (data exception): the value itself, such as text PostgreSQL cannot store
      // (a lone surrogate in a string); retrying the same call cannot help.
      const code = (err as { code?: unknown }).code
      if (typeof code === 'string' && code.startsWith('22')) {
        throw new TaskloomError('INVALID_INPUT', `PostgreSQL refused the value: ${(err as Error).message}`, {
          cause: err,
          retryable: false,
        })
      }
      throw new TaskloomError('STORE_UNAVAILABLE', `the store is unavailable: ${(err as Error).message}`, {
        cause: err,
        retryable: true,
      })
    }
  }

  private info<Result>(record: TaskRecord): TaskInfo<Result> {
    return toTaskInfo<Result>(record, (text) => this.codec.decode(text))
  }

  private prepare(
    task: TaskDefinition<any, any>,
    input: unknown,
    rawOptions: unknown,
    inputPath: string,
    optionsPath: string,
  ): NewTask {
    this.assertOpen()
    if (!task || typeof task.name !== 'string' || !task.input) {
      throw new TaskloomError('UNKNOWN_TASK', 'submit needs a task made by defineTask()')
    }
    checkInput(task, input, inputPath)
    const options = checkOptions(rawOptions, optionsPath)
    if (options.schedule !== undefined) {
      throw new TaskloomError(
        'INVALID_OPTIONS',
        `${optionsPath}.schedule: use submit() to create a schedule`,
        {
          issues: [{ path: `${optionsPath}.schedule`, message: 'only submit() takes a schedule' }],
        },
      )
    }
    const now = Date.now()
    const runAt =
      options.runAt !== undefined ? Number(options.runAt) : options.delayMs ? now + options.delayMs : now
    return {
      id: uuidV7(now),
      name: task.name,
      tenantId: options.tenantId ?? this.options.defaultTenantId,
      payload: this.codec.encode(input, task.name),
      priority: options.priority ?? task.defaults.priority,
      runAt,
      timeoutMs: options.timeoutMs ?? task.defaults.timeoutMs,
      maxRetries: options.maxRetries ?? task.defaults.maxRetries,
      createdAt: now,
      idempotencyKey: options.idempotencyKey,
      idempotencyTtlMs: this.options.idempotencyTtlMs,
      lockKey: options.lockKey,
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new TaskloomError('CLOSED', `queue ${this.name} is closed`)
  }
}

/** Creates a queue. See {@link QueueOptions}. */
export function createQueue(options: QueueOptions): Queue {
  return new Queue(options)
}

function toSubmitResult(r: EnqueueResult): SubmitResult {
  return { id: r.id, status: r.status, createdAt: new Date(r.createdAt), deduplicated: r.deduplicated }
}

function checkPage(page: { limit?: number; offset?: number }): { limit: number; offset: number } {
  const limit = page.limit ?? 50
  const offset = page.offset ?? 0
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000 || !Number.isInteger(offset) || offset < 0) {
    throw new TaskloomError(
      'INVALID_OPTIONS',
      'limit must be an integer from 1 to 1000 and offset a non-negative integer',
    )
  }
  return { limit, offset }
}

function checkList(options: ListOptions): ListFilter {
  const { limit, offset } = checkPage(options)
  const statuses = options.status === undefined ? [] : [options.status].flat()
  const bad = statuses.find((s) => !TASK_STATUSES.includes(s))
  if (bad !== undefined) {
    throw new TaskloomError(
      'INVALID_OPTIONS',
      `unknown status ${JSON.stringify(bad)}: use ${TASK_STATUSES.join(', ')}`,
    )
  }
  return {
    status: options.status,
    tenantId: options.tenantId,
    name: options.name,
    limit,
    offset,
    cursor: options.cursor,
  }
}

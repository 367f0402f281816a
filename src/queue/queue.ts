/**
 * `createQueue`: submit, inspect, cancel and dead-letter handling for one named queue. In durable
 * mode it also coordinates the broker with the store: rows are written before the broker sees a
 * task, the change feed is drained into the store, and recovery restores what Redis loses.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import type {
  Broker,
  CountsOptions,
  EnqueueResult,
  EventCount,
  NewTask,
  QueueCounts,
  TaskRecord,
} from '../broker/broker.js'
import { MemoryBroker } from '../broker/memory/memory-broker.js'
import { BROKER_TIMEOUT_MS } from '../broker/redis/connection.js'
import { RedisBroker } from '../broker/redis/redis-broker.js'
import type { Definitions } from '../definitions/definitions.js'
import { Recovery } from '../durable/recovery.js'
import { StoreSync } from '../durable/store-sync.js'
import { storedToNewTask } from '../durable/stored-task.js'
import { TaskloomError } from '../errors.js'
import { QueueEventHub } from '../events/hub.js'
import { waitForFinal } from '../events/wait-for.js'
import { type BreakerHandle, breakerHandle } from '../fleet/breakers.js'
import { acquireLock, type Lock, type LockOptions, withLock } from '../fleet/locks.js'
import { listWorkers, type WorkerInfo } from '../fleet/workers.js'
import { type PauseTarget, scopeOf, setPaused } from '../flow/admin.js'
import { flowConfigOf } from '../flow/config.js'
import { createJsonLogger, type Logger, logEnabled } from '../logger.js'
import { traceSubmit } from '../observability/tracing.js'
import { attachSchedules, type QueueExtras } from '../schedule/attach.js'
import type { Schedules } from '../schedule/schedules.js'
import { openPostgresStore, type PostgresStore, storeTimeout } from '../store/postgres/postgres-store.js'
import type { ListFilter } from '../store/store.js'
import type { TaskDefinition } from '../task/define-task.js'
import { TASK_STATUSES, type TaskChange, type TaskStatus, TERMINAL_STATUSES } from '../task/model.js'
import { textFault } from '../task/text.js'
import { checkInput, checkOptions, checkText, type SubmitOptions } from '../task/validate.js'
import { Batcher } from '../util/batcher.js'
import { orTimeout } from '../util/or-timeout.js'
import { uuidV7 } from '../util/uuid-v7.js'
import { type Codec, createCodec } from './codec.js'
import { cancelDurably } from './durable-cancel.js'
import {
  type ChainStep,
  type FlowHost,
  type FlowOptions,
  type FlowResult,
  type FlowSpec,
  type FlowStatus,
  flowStatus,
  submitChain,
  submitDependent,
  submitFlow,
} from './flows.js'
import { internals, type QueueInternals } from './internal.js'
import { Opener } from './opener.js'
import { checkQueueOptions, type QueueOptions, type QueueSettings } from './options.js'
import { idempotencyConflict, samePayload, sameSchedule } from './replay.js'
import { type TaskInfo, toTaskInfo } from './task-info.js'
import { type LogsOptions, type TaskLogPage, taskLogs } from './task-logs.js'

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
  /** Created at or after this time (epoch ms or a Date). */
  createdFrom?: number | Date
  /** Created before this time (epoch ms or a Date). */
  createdTo?: number | Date
  /** Default 50, at most 1000. */
  limit?: number
  offset?: number
  cursor?: string
  /** Count at most this many matches: `total` is then a lower bound when it equals it. Default: all. */
  countLimit?: number
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
/**
 * A finished status the store has not recorded yet, as readers see it: still processing (without
 * the result), since Redis could lose it and run the task again.
 */
function unconfirmed(live: TaskRecord): TaskRecord {
  const { result: _result, finishedAt: _finishedAt, ...attempt } = live
  return { ...attempt, status: 'processing' }
}

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
  private readonly opener: Opener
  private closed = false
  private readonly extras: QueueExtras

  /** Cron schedules of this queue (kept in the store; fired by `createScheduler`). */
  readonly schedules: Schedules
  /** Task definitions registered by workers, read through a cache (TTL `definitionCacheTtlMs`). */
  readonly definitions: Definitions
  /**
   * Queue events from every process (docs/events.md): `queue.events.on('completed', listener)`, or
   * `queue.events.subscribe({ from: lastId })` to resume after an event id.
   */
  readonly events: QueueEventHub

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
    const brokerOptions = {
      retentionMs: this.options.retentionMs,
      changeFeed: durable,
      fenced: durable,
      flow: flowConfigOf(options),
    }
    this.broker =
      options.broker ??
      (options.redis === undefined
        ? new MemoryBroker(this.name, brokerOptions)
        : new RedisBroker(this.name, {
            redis: options.redis,
            timeoutMs: options.brokerTimeoutMs,
            logger: this.logger,
            ...brokerOptions,
          }))
    this.extras = attachSchedules({
      name: this.name,
      redis: options.redis,
      redisTimeoutMs: options.brokerTimeoutMs,
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
    this.events = new QueueEventHub(this.broker, this.options.events, this.logger, () => this.assertOpen())
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
      openState: () => this.opener.state(),
      output: { maxLogLines: this.options.maxLogLines, maxLogLineLength: this.options.maxLogLineLength },
    }
    this.submits = new Batcher((tasks) => this.write(tasks), {
      maxBatch: this.options.maxSubmitBatch,
      concurrency: 2,
      // From the submit call on, not per stage: waiting for a batch slot counts too.
      timeoutMs: () => this.store?.queryTimeoutMs,
      timeoutError: (ms) => storeTimeout(ms),
    })
    this.opener = new Opener(
      () => this.openStore(options),
      () => this.discardStore(),
      this.logger,
      options.openTimeoutMs,
      options.brokerTimeoutMs ?? BROKER_TIMEOUT_MS,
    )
    this.opening = durable ? this.opener.open() : this.opener.skip()
    // A failed open surfaces from ready() and every call; never as an unhandled rejection.
    this.opening.catch(() => {})
  }

  /**
   * Resolves once the queue can serve: the store is open with a current schema, and a Redis that
   * lost its data has been restored. Every method waits for it; call it to fail fast at startup.
   * An open that failed because PostgreSQL (or Redis) was unreachable is retried with backoff until
   * it succeeds or `openTimeoutMs` passes; meanwhile `ready()` (and every call) rejects with the
   * retryable STORE_UNAVAILABLE after waiting at most `brokerTimeoutMs`. Once the open has failed
   * for good (`openTimeoutMs` passed, or an error retrying cannot fix, such as SCHEMA_OUTDATED), it
   * rejects with that error at once.
   */
  ready(): Promise<void> {
    return this.opener.ready(this.opening)
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
    if (options?.dependsOn?.length)
      return toSubmitResult(await submitDependent(this.flowHost, row, options.dependsOn))
    const result = toSubmitResult(await traceSubmit(this.name, [row], () => this.submits.add(row)))
    if (result.deduplicated) await this.checkReplay(row, result.id, 'options.idempotencyKey')
    return result
  }

  /**
   * A repeated idempotency key must come with the same task name and input (see replay.ts), else
   * IDEMPOTENCY_CONFLICT: silently answering the first task would hide the caller's bug. A task
   * already gone (past its retention) cannot be compared and answers as a replay.
   */
  private async checkReplay(row: NewTask, existingId: string, path: string): Promise<void> {
    const existing = await this.get(existingId)
    if (!existing) return
    const submitted = { name: row.name, input: this.codec.decode(row.payload) }
    if (!samePayload(submitted, existing)) {
      throw idempotencyConflict(row.idempotencyKey ?? '', existingId, path)
    }
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
    if (
      !created &&
      options.idempotencyKey !== undefined &&
      !sameSchedule(schedule, { name: task.name, cron: options.schedule!, input })
    ) {
      throw idempotencyConflict(options.idempotencyKey, id, 'options.idempotencyKey')
    }
    return { id, scheduleId: id, status: 'pending', createdAt: schedule.createdAt, deduplicated: !created }
  }

  /** Validates every entry first (nothing is submitted if one is bad), then submits in batches. */
  async submitMany(entries: readonly SubmitEntry<any, any>[]): Promise<SubmitResult[]> {
    if (!Array.isArray(entries)) throw new TaskloomError('INVALID_INPUT', 'submitMany takes an array')
    const rows = entries.map((e, i) =>
      this.prepare(e.task, e.input, e.options, `[${i}].input`, `[${i}].options`),
    )
    await this.ready()
    const out = await traceSubmit(this.name, rows, async () => {
      const out: SubmitResult[] = []
      for (let i = 0; i < rows.length; i += this.options.maxSubmitBatch) {
        const results = await this.write(rows.slice(i, i + this.options.maxSubmitBatch))
        out.push(...results.map(toSubmitResult))
      }
      return out
    })
    // Every entry is written before a conflict is reported: the others are submitted, and calling
    // again with the same keys replays them.
    const conflicts: TaskloomError[] = []
    for (const [i, r] of out.entries()) {
      if (!r.deduplicated) continue
      await this.checkReplay(rows[i]!, r.id, `[${i}].options.idempotencyKey`).catch((err: unknown) => {
        if (!(err instanceof TaskloomError) || err.code !== 'IDEMPOTENCY_CONFLICT') throw err
        conflicts.push(err)
      })
    }
    if (conflicts.length > 0) {
      const issues = conflicts.flatMap((c) => c.issues)
      throw new TaskloomError(
        'IDEMPOTENCY_CONFLICT',
        `${conflicts.length} of ${rows.length} entries reused an idempotency key with another payload (${issues.map((i) => i.path).join(', ')}); the other entries were submitted`,
        { issues },
      )
    }
    return out
  }

  /**
   * Submits a whole flow in one atomic step (every task exists, or none does): a tree
   * (`{ task, input, children }`, children run first, the root last) or a DAG
   * (`{ nodes: [{ key, task, input, dependsOn: [key] }] }`). Answers the ids by key. Cycles, unknown
   * keys and flows past `maxFlowNodes` / `maxFlowDepth` are INVALID_INPUT, before anything is stored.
   * @example
   * const { rootId } = await queue.flow({ task: report, input: {}, children: [{ task: load, input: {} }] })
   */
  async flow(spec: FlowSpec, options?: FlowOptions): Promise<FlowResult> {
    this.assertOpen()
    await this.ready()
    return submitFlow(this.flowHost, spec, options)
  }

  /** A flow in a line: each step runs after the one before it (keys '0', '1', …; the last is the root). */
  async chain(steps: readonly ChainStep[], options?: FlowOptions): Promise<FlowResult> {
    this.assertOpen()
    await this.ready()
    return submitChain(this.flowHost, steps, options)
  }

  /** Every node of a flow (by its id, a tree's root id) with its status; null when unknown. */
  async flowStatus(flowId: string, options: { tenantId?: string } = {}): Promise<FlowStatus | null> {
    this.assertOpen()
    await this.ready()
    return flowStatus(this.flowHost, flowId, options.tenantId)
  }

  private get flowHost(): FlowHost {
    return {
      name: this.name,
      broker: this.broker,
      store: () => this.store,
      limits: { maxNodes: this.options.maxFlowNodes, maxDepth: this.options.maxFlowDepth },
      defaultTenantId: this.options.defaultTenantId,
      idempotencyTtlMs: this.options.idempotencyTtlMs,
      prepare: (task, input, options, inputPath, optionsPath) =>
        this.prepare(task, input, options, inputPath, optionsPath),
      fromStore: (call) => this.fromStore(call),
    }
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
      // A finished status is shown once the store has it: until then it could still be lost with
      // Redis, and the task run again. While PostgreSQL is unreachable that cannot be known, so the
      // read fails (retryable) rather than answer a status a later read might take back.
      const stored = await this.fromStore(() => store.get(id))
      if (stored?.status !== live.status) return this.info<Result>(unconfirmed(live))
    }
    if (live) return this.info<Result>(live)
    const stored = store ? await this.fromStore(() => store.get(id)) : null
    return stored ? this.info<Result>(stored) : null
  }

  // --- Task output and queue events (issue 17) ---

  /**
   * Resolves with the task once it is final (completed, failed or cancelled): at once if it is
   * already, else when its final event arrives (no polling). Rejects with TIMEOUT after `timeoutMs`
   * (default 30,000), NOT_FOUND for an unknown id.
   * @example const done = await queue.waitFor(id, { timeoutMs: 5000 })
   */
  async waitFor<Result = unknown>(
    id: string,
    options: { timeoutMs?: number } = {},
  ): Promise<TaskInfo<Result>> {
    this.assertOpen()
    const timeoutMs = options.timeoutMs ?? 30_000
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > 2_147_483_647) {
      throw new TaskloomError('INVALID_OPTIONS', 'timeoutMs must be an integer of milliseconds from 1')
    }
    await this.ready()
    const read = async () => {
      const task = await this.get<Result>(id)
      // Durable: a final status shows once PostgreSQL has it; the broker may have it already.
      if (!task || TERMINAL_STATUSES.has(task.status) || !this.store) return { task, settling: false }
      const live = await this.broker.get(id)
      return { task, settling: live !== null && TERMINAL_STATUSES.has(live.status) }
    }
    return waitForFinal(this.events.live(), read, id, timeoutMs)
  }

  /**
   * The task's log lines (`ctx.log`), oldest first: the last `maxLogLines` kept, from the broker
   * while it holds the task and, in durable mode, from PostgreSQL too. `tail: n` answers the last n;
   * `offset`/`limit` page from the oldest. With `tenantId`, another tenant's task is NOT_FOUND.
   */
  async logs(id: string, options: LogsOptions = {}): Promise<TaskLogPage> {
    this.assertOpen()
    await this.ready()
    const task = await this.get(id)
    if (!task || (options.tenantId !== undefined && task.tenantId !== options.tenantId)) {
      throw new TaskloomError('NOT_FOUND', `task ${id} not found`)
    }
    const store = this.store
    return taskLogs(
      () => this.broker.logs(id),
      store ? () => this.fromStore(() => store.logs(id)) : undefined,
      options,
    )
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
        const live = await this.broker.get(row.id)
        // The row is unfinished: a finished status in Redis is not recorded yet (see get()).
        if (live && TERMINAL_STATUSES.has(live.status)) return this.info(unconfirmed(live))
        return this.info(live ?? row)
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
   * a finished one neither (TASK_FINISHED); an unknown id is NOT_FOUND. A cancel that failed with
   * STORE_UNAVAILABLE can be retried: the retry finishes recording it.
   *
   * In durable mode the cancel is as durable as a submit: it resolves only once PostgreSQL records
   * it, else it rejects with the retryable STORE_UNAVAILABLE (see durable-cancel.ts for the order
   * of the writes and the race with an attempt).
   */
  async cancel(id: string): Promise<TaskInfo> {
    this.assertOpen()
    await this.ready()
    const store = this.store
    const cancelled = this.info(
      store
        ? await cancelDurably(
            { broker: this.broker, store, logger: this.logger, fromStore: (call) => this.fromStore(call) },
            id,
          )
        : await this.broker.cancel(id, Date.now()),
    )
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

  /**
   * Runs `fn` holding the lock `key`, renewed while `fn` runs; the lock is released on every path.
   * `signal` aborts with LOCK_LOST when the lock is lost (see src/fleet/locks.ts).
   */
  async withLock<T>(
    key: string,
    fn: (lock: Lock, signal: AbortSignal) => T | Promise<T>,
    options?: LockOptions,
  ): Promise<T> {
    this.assertOpen()
    await this.ready()
    return withLock(this.broker, key, fn, options)
  }

  /**
   * A circuit breaker's shared state (a named one such as 'smtp', or a task's); with `tenantId`,
   * that tenant's own breaker of that name (a per-tenant breaker, `'smtp@acme'`).
   */
  breaker(name: string, options: { tenantId?: string } = {}): BreakerHandle {
    this.assertOpen()
    return breakerHandle(this.broker, name, options.tenantId)
  }

  /** Every worker of this queue that heartbeated lately, silent ones as UNHEALTHY. */
  async workers(): Promise<WorkerInfo[]> {
    this.assertOpen()
    await this.ready()
    return listWorkers(this.broker, Date.now())
  }

  /**
   * Tasks waiting, scheduled, running and dead; with `{ oldestReady: true }` also when the oldest
   * ready task of each priority became claimable (`oldestReadyAt`).
   */
  async counts(options: CountsOptions = {}): Promise<QueueCounts> {
    this.assertOpen()
    await this.ready()
    if (!options.flow) return this.broker.counts(options)
    const [counts, flow] = await Promise.all([this.broker.counts(options), this.broker.flowState(Date.now())])
    return { ...counts, flow }
  }

  /**
   * Stops claims of the whole queue, or of one task name or group (`{ task }`, `{ group }`),
   * fleet-wide, until `resume`: running handlers finish, submits still succeed. In durable mode
   * the pause is recorded in PostgreSQL first, so it outlives a Redis that restarts empty.
   * @example
   * await queue.pause({ group: 'acme' })
   */
  async pause(target?: PauseTarget): Promise<void> {
    await this.setFlowPaused(target, true)
  }

  /** Lifts a pause made by `pause` (the same target); waiting tasks are claimable at once. */
  async resume(target?: PauseTarget): Promise<void> {
    await this.setFlowPaused(target, false)
  }

  private async setFlowPaused(target: PauseTarget | undefined, paused: boolean): Promise<void> {
    this.assertOpen()
    const scope = scopeOf(target)
    await this.ready()
    await setPaused(this.broker, this.store, scope, paused)
    this.logger.info({ scope }, paused ? 'flow paused' : 'flow resumed')
  }

  /**
   * The queue's event totals for the whole fleet (submitted, completed, attempt_failed, retried,
   * dead_lettered, lease_expired, cancelled, dead_letter_retried) by tenant, task name and detail,
   * counted by the broker in the call that makes each change and kept with the queue's data (in
   * Redis: they survive process restarts, not a Redis that loses its data). The metrics export them.
   */
  async eventCounts(): Promise<EventCount[]> {
    this.assertOpen()
    await this.ready()
    return this.broker.eventCounts()
  }

  /**
   * Flushes pending submits and the change feed, then closes the connections the queue opened.
   * Close the workers of this queue first.
   */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.opener.cancel()
    await this.opening.catch(() => {})
    await this.submits.drain()
    await this.events.close()
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

  /** Closes what a failed open attempt left, before the next attempt. */
  private async discardStore(): Promise<void> {
    const store = this.store
    this.store = undefined
    await this.recovery?.stop().catch(() => {})
    this.recovery = undefined
    await this.sync?.stop().catch(() => {})
    this.sync = undefined
    await store?.close().catch(() => {})
  }

  private async openStore(options: QueueOptions): Promise<void> {
    const store = await openPostgresStore({
      postgres: options.postgres === false ? undefined : options.postgres,
      queue: this.name,
      schema: options.postgresSchema,
      migrate: options.migrate,
      max: options.postgresPool?.max,
      connectionTimeoutMs: options.postgresPool?.connectionTimeoutMs,
      queryTimeoutMs: options.postgresPool?.queryTimeoutMs,
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
    this.sync = new StoreSync(this.broker, store, consumer, this.logger, {
      maxLogLines: this.options.maxLogLines,
    })
    this.recovery = new Recovery(
      this.broker,
      store,
      this.logger,
      options.recovery ?? {},
      this.options.recordRetentionMs,
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
    this[internals].afterInsert?.(rows)
    // The store alone judges idempotency keys; the broker gets the new tasks by id, and the stored
    // ones a repeat matched that the broker never confirmed (a re-fired cron tick whose scheduler
    // died before its hand-off): waiting for reconciliation would delay them by its grace period.
    const fresh = rows.filter((row, i) => !stored[i]!.deduplicated && stored[i]!.id === row.id)
    const freshIds = new Set(fresh.map((row) => row.id))
    const unconfirmed = stored.filter(
      (s) =>
        s.deduplicated &&
        s.confirmed === false &&
        (s.status === 'pending' || s.status === 'queued') &&
        !freshIds.has(s.id), // matched a row of this very batch, handed over below
    )
    const handOffs: Promise<void>[] = []
    if (fresh.length > 0) handOffs.push(this.handOff(fresh))
    if (unconfirmed.length > 0)
      handOffs.push(
        this.handOffStored(
          store,
          unconfirmed.map((s) => s.id),
        ),
      )
    await Promise.all(handOffs)
    return stored.map((s) => ({
      id: s.id,
      status: s.status,
      createdAt: s.createdAt,
      deduplicated: s.deduplicated,
    }))
  }

  /**
   * Hands stored tasks that a repeat submit matched to the broker, read from their rows (the repeat's
   * own input may differ). Enqueue is idempotent by id: a task the broker holds already (handed over,
   * only not yet claimed) stays as it is. Best effort, like `handOff`: reconciliation is the backstop.
   */
  private async handOffStored(store: PostgresStore, ids: string[]): Promise<void> {
    try {
      const rows = await Promise.all([...new Set(ids)].map((id) => store.get(id)))
      const now = Date.now()
      const tasks = rows
        .filter((r) => r !== null && (r.status === 'pending' || r.status === 'queued'))
        .map((r) => storedToNewTask(r!, r!.runAt))
      if (tasks.length > 0) await this.handOff(tasks, now)
    } catch (err) {
      this.logger.warn(
        { err, tasks: ids.length },
        'handing matched stored tasks to the broker failed; reconciliation will',
      )
    }
  }

  /**
   * Gives stored tasks to the broker. If the broker is slow or down the submit still succeeds (the
   * row is the acknowledgement); reconciliation enqueues whatever the broker did not confirm.
   * Nothing is written back to the store here: the broker's first change for the task (its claim)
   * sets `enqueued_at`, and reconciliation confirms rows the broker already holds without enqueuing
   * them twice. A second UPDATE of the same rows on the submit path raced the change feed's UPDATE
   * for row locks (see docs/benchmarks.md).
   */
  private async handOff(rows: NewTask[], now = Date.now()): Promise<void> {
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
        // The driver's own message stays in `cause`: it is no text to show an API client.
        throw new TaskloomError('INVALID_INPUT', 'the store refused a value as invalid data', {
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
    return toTaskInfo<Result>(record, (text) => this.codec.read(text))
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
    checkText(task.name, input, inputPath)
    const options = checkOptions(rawOptions, optionsPath)
    if (options.dependsOn?.length && optionsPath !== 'options') {
      throw new TaskloomError('INVALID_OPTIONS', `${optionsPath}.dependsOn: use submit() or queue.flow()`, {
        issues: [{ path: `${optionsPath}.dependsOn`, message: 'only submit() and flow() take dependencies' }],
      })
    }
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
      group: options.group,
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
  if (options.name !== undefined && (typeof options.name !== 'string' || textFault(options.name))) {
    const message = typeof options.name === 'string' ? textFault(options.name)! : 'expected a string'
    throw new TaskloomError('INVALID_OPTIONS', `invalid name filter: ${message}`, {
      issues: [{ path: 'name', message }],
    })
  }
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
    createdFrom: options.createdFrom === undefined ? undefined : Number(options.createdFrom),
    createdTo: options.createdTo === undefined ? undefined : Number(options.createdTo),
    limit,
    offset,
    cursor: options.cursor,
    countLimit: options.countLimit,
  }
}

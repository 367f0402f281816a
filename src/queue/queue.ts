/**
 * `createQueue`: submit, inspect, cancel and dead-letter handling for one named queue.
 */
import { randomUUID } from 'node:crypto'
import type { Redis } from 'ioredis'
import { z } from 'zod'
import type { Broker, EnqueueResult, NewTask, QueueCounts } from '../broker/broker.js'
import { MemoryBroker } from '../broker/memory/memory-broker.js'
import { RedisBroker } from '../broker/redis/redis-broker.js'
import { TaskloomError } from '../errors.js'
import { createJsonLogger, type Logger } from '../logger.js'
import type { TaskDefinition } from '../task/define-task.js'
import { checkInput, checkOptions, type SubmitOptions, TENANT_ID } from '../task/validate.js'
import { Batcher } from '../util/batcher.js'
import { internals, type QueueInternals } from './internal.js'
import { type TaskInfo, toTaskInfo } from './task-info.js'

export interface QueueOptions {
  /** The queue's name: 1-200 letters, digits, '.', '_', ':' or '-'. */
  name: string
  /**
   * A Redis URL or an ioredis client. Omitted: the in-process broker (one process only; for
   * quick starts, demos and unit tests).
   */
  redis?: string | Redis
  /** Tenant of tasks submitted without `tenantId`. Default `'default'`. */
  defaultTenantId?: string
  /** How long an idempotency key maps to its task. Default 24 h. */
  idempotencyTtlMs?: number
  /** How long completed and cancelled task records are kept. Default 24 h. */
  retentionMs?: number
  /** Largest batch of submits sent in one round trip. Default 500. */
  maxSubmitBatch?: number
  /** Pino-compatible logger. Default: JSON lines on stderr, `warn` and above. */
  logger?: Logger
  /** A custom Broker (advanced; for tests and new backends). Wins over `redis`. */
  broker?: Broker
}

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
}

export interface ListPage<T> {
  tasks: T[]
  total: number
  limit: number
  offset: number
}

const DAY = 86_400_000
const DEFAULTS = { defaultTenantId: 'default', idempotencyTtlMs: DAY, retentionMs: DAY, maxSubmitBatch: 500 }

export class Queue {
  readonly name: string
  readonly [internals]: QueueInternals
  private readonly broker: Broker
  private readonly options: typeof DEFAULTS
  private readonly submits: Batcher<NewTask, EnqueueResult>
  private closed = false

  /** Dead-letter queue: tasks whose retries are exhausted. */
  readonly dlq = {
    /** Most recently dead first. */
    list: async (page: { limit?: number; offset?: number } = {}): Promise<ListPage<TaskInfo>> => {
      const { limit, offset } = checkPage(page)
      const { items, total } = await this.broker.listDead(limit, offset)
      return { tasks: items.map((r) => toTaskInfo(r, decode)), total, limit, offset }
    },
    /** Puts a dead task back in the queue with a fresh attempt budget. */
    retry: async (id: string): Promise<void> => {
      const moved = await this.broker.retryDead([id], Date.now())
      if (moved === 0) throw new TaskloomError('NOT_IN_DLQ', `task ${id} is not in the dead-letter queue`)
    },
    /** Puts every dead task back; answers how many moved. */
    retryAll: async (): Promise<number> => {
      let total = 0
      for (;;) {
        const moved = await this.broker.retryAllDead(1000, Date.now())
        total += moved
        if (moved < 1000) return total
      }
    },
  }

  constructor(options: QueueOptions) {
    this.options = checkQueueOptions(options)
    this.name = options.name
    const retentionMs = this.options.retentionMs
    this.broker =
      options.broker ??
      (options.redis === undefined
        ? new MemoryBroker(options.name, { retentionMs })
        : new RedisBroker(options.name, { redis: options.redis, retentionMs }))
    const logger = options.logger ?? createJsonLogger({ service: 'taskloom' })
    this[internals] = { broker: this.broker, logger, encode, decode }
    this.submits = new Batcher((tasks) => this.broker.enqueue(tasks, Date.now()), {
      maxBatch: this.options.maxSubmitBatch,
      concurrency: 2,
    })
  }

  /**
   * Validates and submits one task. Concurrent submits share one round trip.
   * @example
   * const { id } = await queue.submit(sendEmail, { to: 'a@b.co', subject: 'hi' }, { priority: 'high' })
   */
  async submit<In, Out>(
    task: TaskDefinition<In, Out>,
    input: In,
    options?: SubmitOptions,
  ): Promise<SubmitResult> {
    const row = this.prepare(task, input, options, 'input', 'options')
    return toSubmitResult(await this.submits.add(row))
  }

  /** Validates every entry first (nothing is submitted if one is bad), then submits in one round trip. */
  async submitMany(entries: readonly SubmitEntry<any, any>[]): Promise<SubmitResult[]> {
    if (!Array.isArray(entries)) throw new TaskloomError('INVALID_INPUT', 'submitMany takes an array')
    const rows = entries.map((e, i) =>
      this.prepare(e.task, e.input, e.options, `[${i}].input`, `[${i}].options`),
    )
    const out: SubmitResult[] = []
    for (let i = 0; i < rows.length; i += this.options.maxSubmitBatch) {
      const results = await this.broker.enqueue(rows.slice(i, i + this.options.maxSubmitBatch), Date.now())
      out.push(...results.map(toSubmitResult))
    }
    return out
  }

  /** The task's current state, or null when unknown (or purged after its retention). */
  async get<Result = unknown>(id: string): Promise<TaskInfo<Result> | null> {
    this.assertOpen()
    const record = await this.broker.get(id)
    return record && toTaskInfo<Result>(record, decode)
  }

  /**
   * Cancels a pending or queued task. A processing task cannot be cancelled (TASK_PROCESSING);
   * a finished one neither (TASK_FINISHED); an unknown id is NOT_FOUND.
   */
  async cancel(id: string): Promise<TaskInfo> {
    this.assertOpen()
    return toTaskInfo(await this.broker.cancel(id, Date.now()), decode)
  }

  /** Tasks waiting, scheduled, running and dead. */
  counts(): Promise<QueueCounts> {
    this.assertOpen()
    return this.broker.counts()
  }

  /** Flushes pending submits and closes connections the queue opened. Close workers first. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.submits.drain()
    await this.broker.close()
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
    const now = Date.now()
    const runAt =
      options.runAt !== undefined ? Number(options.runAt) : options.delayMs ? now + options.delayMs : now
    return {
      id: randomUUID(),
      name: task.name,
      tenantId: options.tenantId ?? this.options.defaultTenantId,
      payload: encode(input),
      priority: options.priority ?? task.defaults.priority,
      runAt,
      timeoutMs: options.timeoutMs ?? task.defaults.timeoutMs,
      maxRetries: options.maxRetries ?? task.defaults.maxRetries,
      createdAt: now,
      idempotencyKey: options.idempotencyKey,
      idempotencyTtlMs: this.options.idempotencyTtlMs,
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

function encode(value: unknown): string {
  try {
    return JSON.stringify(value === undefined ? null : value)
  } catch (err) {
    throw new TaskloomError('INVALID_INPUT', `value is not JSON-serialisable: ${(err as Error).message}`, {
      cause: err,
    })
  }
}

function decode(text: string): unknown {
  return JSON.parse(text)
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

const queueOptionsSchema = z.object({
  name: z.string().regex(/^[A-Za-z0-9._:-]{1,200}$/, "1-200 letters, digits, '.', '_', ':' or '-'"),
  defaultTenantId: TENANT_ID.optional(),
  idempotencyTtlMs: z
    .number()
    .int()
    .min(1)
    .max(366 * DAY)
    .optional(),
  retentionMs: z
    .number()
    .int()
    .min(1)
    .max(3660 * DAY)
    .optional(),
  maxSubmitBatch: z.number().int().min(1).max(10_000).optional(),
})

function checkQueueOptions(options: QueueOptions): typeof DEFAULTS {
  const parsed = queueOptionsSchema.safeParse(options ?? {})
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => ({
      path: i.path.map(String).join('.'),
      message: i.message,
    }))
    const text = issues.map((i) => `${i.path || '(options)'}: ${i.message}`).join('; ')
    throw new TaskloomError('INVALID_OPTIONS', `invalid queue options: ${text}`, { issues })
  }
  const { name: _name, ...given } = parsed.data
  const defined = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined))
  return { ...DEFAULTS, ...defined } satisfies typeof DEFAULTS
}

/** `createQueue` options, their defaults and their validation. */
import { z } from 'zod'
import type { Broker } from '../broker/broker.js'
import type { RedisInput } from '../broker/redis/connection.js'
import type { RecoveryOptions } from '../durable/recovery.js'
import { TaskloomError } from '../errors.js'
import { type FlowControlOptions, flowSchema } from '../flow/config.js'
import type { Logger } from '../logger.js'
import type { PoolSettings, PostgresInput } from '../store/postgres/connection.js'
import { TENANT_ID } from '../task/validate.js'
import type { EncryptionOptions } from './codec.js'

export interface QueueOptions extends FlowControlOptions {
  /** The queue's name: 1-200 letters, digits, '.', '_', ':' or '-'. */
  name: string
  /**
   * A Redis URL, an ioredis client (`Redis` or `Cluster`), or `{ cluster: [seed URLs] }`,
   * `{ sentinels, name }`, `{ url }` with options such as `waitReplicas` (see docs/scaling.md).
   * Omitted: the in-process broker (one process only; for quick starts, demos and unit tests).
   */
  redis?: RedisInput
  /**
   * Longest wait of one Redis call, queued for a reconnect or sent: past it the call rejects with
   * the retryable `BROKER_UNAVAILABLE` (503 over HTTP), and a call that gave up is never sent later.
   * Applies to the connections taskloom opens from a URL; a client you pass keeps its own
   * `commandTimeout`. Default 5,000 ms.
   */
  brokerTimeoutMs?: number
  /**
   * Durable mode: when PostgreSQL (or Redis) is unreachable as the queue opens, the open is retried
   * with backoff (100 ms doubling to 5 s) for this long before it fails for good. Default: no limit.
   */
  openTimeoutMs?: number
  /**
   * The durable record: a postgres:// URL or a `pg.Pool` (PostgreSQL), `{ dataDir }` (embedded
   * PGlite kept on disk) or `{ pglite }` (a PGlite instance of yours). `false`: no store.
   * Default: with `redis`, no store (Redis-only mode, the record lives in Redis for `retentionMs`);
   * without `redis`, an in-memory PGlite (embedded mode).
   */
  postgres?: PostgresInput | false
  /** The PostgreSQL schema of taskloom's tables. Default `'taskloom'`. */
  postgresSchema?: string
  /**
   * The pool opened from a postgres:// URL: `max` connections (default 10) and how long to wait for
   * one, `connectionTimeoutMs` (default 10 s); both are ignored for a `pg.Pool` you pass (size that
   * one). `queryTimeoutMs` (default 5 s, any pool): how long a store call (a submit's insert, `get`,
   * `list`, `cancel`, a schedule change) waits for PostgreSQL before it fails with the retryable
   * STORE_UNAVAILABLE, so a frozen or unreachable server cannot block callers for as long as it lasts.
   */
  postgresPool?: PoolSettings
  /**
   * Apply missing migrations when the store opens. Default: true for PGlite, false for PostgreSQL,
   * where a queue refuses to start on an older schema (run `npx taskloom migrate`).
   */
  migrate?: boolean
  /** Tenant of tasks submitted without `tenantId`. Default `'default'`. */
  defaultTenantId?: string
  /** How long an idempotency key maps to its task. Default 24 h. */
  idempotencyTtlMs?: number
  /** How long completed and cancelled task records are kept in the broker. Default 24 h. */
  retentionMs?: number
  /** How long finished rows are kept in the store before they are purged. Default 30 days. */
  recordRetentionMs?: number
  /** Largest batch of submits sent in one round trip. Default 500. */
  maxSubmitBatch?: number
  /** Most tasks one `queue.flow` (or `chain`) may create. Default 20,000. */
  maxFlowNodes?: number
  /** Most tasks on one path through a flow (a chain's length). Default 1,000. */
  maxFlowDepth?: number
  /** Encrypt inputs and results (AES-256-GCM) before they reach Redis or PostgreSQL. Default: off. */
  encryption?: EncryptionOptions
  /** Durable mode: Redis-loss recovery and reconciliation timings. */
  recovery?: RecoveryOptions
  /** Pino-compatible logger. Default: JSON lines on stderr, `warn` and above. */
  logger?: Logger
  /**
   * Record every status change the store applies (processing, completed, failed, retried, cancelled)
   * as a `task.status` entry in audit_log, written by the same statement. Default false: it adds a row
   * per change to the store's write load.
   */
  auditStatusChanges?: boolean
  /** How long task definitions stay in the in-memory and Redis caches. Default 5 minutes. */
  definitionCacheTtlMs?: number
  /** A custom Broker (advanced; for tests and new backends). Wins over `redis`. */
  broker?: Broker
  // --- Task output and queue events (issue 17; docs/events.md) ---
  /** Log lines (`ctx.log`) kept per task, the most recent ones; older lines are dropped. Default 1,000. */
  maxLogLines?: number
  /** Longest log line, in characters; a longer line is cut to this length, ending in '…'. Default 2,000. */
  maxLogLineLength?: number
  /**
   * Queue events (`queue.events`, `queue.waitFor`): the Redis stream keeps about the last `maxLen`
   * events (default 10,000). Events are written only while some process listens and for `keepMs`
   * after its last renewal (default 300,000 ms), so a listener that restarts within that resumes from
   * its last id without a gap; nobody listening costs the hot path one GET per script call.
   */
  events?: { maxLen?: number; keepMs?: number }
}

const DAY = 86_400_000
export const QUEUE_DEFAULTS = {
  defaultTenantId: 'default',
  idempotencyTtlMs: DAY,
  retentionMs: DAY,
  recordRetentionMs: 30 * DAY,
  maxSubmitBatch: 500,
  maxLogLines: 1000,
  maxLogLineLength: 2000,
  events: { maxLen: 10_000, keepMs: 300_000 },
  maxFlowNodes: 20_000,
  maxFlowDepth: 1000,
}
export type QueueSettings = typeof QUEUE_DEFAULTS

const ms = (max: number) => z.number().int().min(1).max(max).optional()

const schema = flowSchema.extend({
  name: z.string().regex(/^[A-Za-z0-9._:-]{1,200}$/, "1-200 letters, digits, '.', '_', ':' or '-'"),
  defaultTenantId: TENANT_ID.optional(),
  idempotencyTtlMs: ms(366 * DAY),
  retentionMs: ms(3660 * DAY),
  recordRetentionMs: ms(3660 * DAY),
  maxSubmitBatch: z.number().int().min(1).max(10_000).optional(),
  maxFlowNodes: z.number().int().min(1).max(1_000_000).optional(),
  maxFlowDepth: z.number().int().min(1).max(100_000).optional(),
  definitionCacheTtlMs: ms(DAY),
  brokerTimeoutMs: z.number().int().min(10).max(3_600_000).optional(),
  openTimeoutMs: z
    .number()
    .int()
    .min(1)
    .max(366 * DAY)
    .optional(),
  auditStatusChanges: z.boolean().optional(),
  postgresPool: z
    .object({
      max: z.number().int().min(1).max(1000).optional(),
      connectionTimeoutMs: z.number().int().min(1).max(3_600_000).optional(),
      queryTimeoutMs: z.number().int().min(1).max(3_600_000).optional(),
    })
    .strict()
    .optional(),
  recovery: z
    .object({ intervalMs: ms(DAY), reconcileGraceMs: ms(DAY), reconcileIntervalMs: ms(DAY) })
    .strict()
    .optional(),
  maxLogLines: z.number().int().min(1).max(100_000).optional(),
  maxLogLineLength: z.number().int().min(16).max(1_000_000).optional(),
  events: z
    .object({ maxLen: z.number().int().min(10).max(10_000_000).optional(), keepMs: ms(DAY) })
    .strict()
    .optional(),
})

export function checkQueueOptions(options: QueueOptions): QueueSettings {
  const parsed = schema.safeParse(options ?? {})
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => ({
      path: i.path.map(String).join('.'),
      message: i.message,
    }))
    const text = issues.map((i) => `${i.path || '(options)'}: ${i.message}`).join('; ')
    throw new TaskloomError('INVALID_OPTIONS', `invalid queue options: ${text}`, { issues })
  }
  const {
    name: _name,
    recovery: _recovery,
    postgresPool: _pool,
    definitionCacheTtlMs: _ttl,
    brokerTimeoutMs: _brokerTimeout,
    openTimeoutMs: _openTimeout,
    auditStatusChanges: _audit,
    fairness: _fairness,
    weights: _weights,
    groupConcurrency: _groupConcurrency,
    limits: _limits,
    ...given
  } = parsed.data
  const { events, ...rest } = given
  const defined = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined))
  const eventSettings = { ...QUEUE_DEFAULTS.events, ...stripUndefined(events ?? {}) }
  return { ...QUEUE_DEFAULTS, ...defined, events: eventSettings } satisfies QueueSettings
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>
}

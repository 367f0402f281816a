/**
 * Reading task rows: the columns every read selects (JSON columns that hold user data come back as
 * JSON text, not parsed and re-serialised), and the mapping to the contract's `StoredTask`.
 */
import { type RawBuilder, sql } from 'kysely'
import type { AttemptRecord, ErrorInfo, Priority, TaskStatus } from '../../task/model.js'
import type { StoredTask } from '../store.js'

/** SQL fragments that must stay literal (not parameters) so partial indexes match. */
export const TERMINAL_SQL = sql.raw(`('completed', 'failed', 'cancelled')`)
export const UNFINISHED_SQL = sql.raw(`('pending', 'queued', 'processing')`)

/** Epoch milliseconds as a timestamptz, in SQL. */
export function timestamp(ms: number): RawBuilder<Date> {
  return sql<Date>`to_timestamp(${ms}::float8 / 1000)`
}

export const TASK_COLUMNS = [
  'id',
  'queue',
  'tenant_id',
  'name',
  'priority',
  'status',
  'schedule',
  'scheduled_at',
  'timeout_ms',
  'max_retries',
  'attempt',
  'retry_count',
  'idempotency_key',
  'idempotency_expires_at',
  'created_at',
  'updated_at',
  'enqueued_at',
  'started_at',
  'completed_at',
  'dead_lettered_at',
  'error',
  'history',
  'worker_id',
  'lock_key',
  sql<string>`payload::text`.as('payload'),
  sql<string | null>`result::text`.as('result'),
  sql<string | null>`progress::text`.as('progress'),
] as const

/** A row as `select(TASK_COLUMNS)` reads it. */
export interface TaskRow {
  id: string
  queue: string
  tenant_id: string
  name: string
  priority: Priority
  status: TaskStatus
  schedule: string | null
  scheduled_at: Date
  timeout_ms: number
  max_retries: number
  attempt: number
  retry_count: number
  idempotency_key: string | null
  idempotency_expires_at: Date | null
  created_at: Date
  updated_at: Date
  enqueued_at: Date | null
  started_at: Date | null
  completed_at: Date | null
  dead_lettered_at: Date | null
  error: unknown
  history: unknown
  worker_id: string | null
  lock_key: string | null
  payload: string
  result: string | null
  progress: string | null
}

const ms = (date: Date | null): number | undefined => (date === null ? undefined : date.getTime())
const opt = <T>(value: T | null): T | undefined => (value === null ? undefined : value)

export function toStoredTask(row: TaskRow): StoredTask {
  return {
    id: row.id,
    queue: row.queue,
    tenantId: row.tenant_id,
    name: row.name,
    payload: row.payload,
    priority: row.priority,
    status: row.status,
    schedule: opt(row.schedule),
    runAt: row.scheduled_at.getTime(),
    timeoutMs: row.timeout_ms,
    maxRetries: row.max_retries,
    attempt: row.attempt,
    retryCount: row.retry_count,
    idempotencyKey: opt(row.idempotency_key),
    idempotencyExpiresAt: ms(row.idempotency_expires_at),
    createdAt: row.created_at.getTime(),
    updatedAt: row.updated_at.getTime(),
    enqueuedAt: ms(row.enqueued_at),
    startedAt: ms(row.started_at),
    finishedAt: ms(row.completed_at),
    deadLetteredAt: ms(row.dead_lettered_at),
    result: opt(row.result),
    error: row.error === null ? undefined : (row.error as ErrorInfo),
    history: Array.isArray(row.history) ? (row.history as AttemptRecord[]) : [],
    workerId: opt(row.worker_id),
    lockKey: opt(row.lock_key),
    progress: opt(row.progress),
  }
}

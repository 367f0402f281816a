/**
 * Row types of the schema that migrations/ creates, for kysely. Timestamps are `timestamptz`
 * (read back as Date by both `pg` and PGlite); JSON columns are `jsonb`, written as JSON text.
 */
import type { ColumnType, Generated } from 'kysely'
import type { Priority, TaskStatus } from '../../task/model.js'

type Timestamp = ColumnType<Date, Date | string, Date | string>
type OptionalTimestamp = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>
type DefaultTimestamp = ColumnType<Date, Date | string | undefined, Date | string>
/** jsonb: read as the parsed value (select `col::text` to get JSON text), written as JSON text. */
type Jsonb = ColumnType<unknown, string, string>
type OptionalJsonb = ColumnType<unknown, string | null | undefined, string | null>

export interface TasksTable {
  id: string
  /** The queue the task belongs to; every Store query is scoped to one. */
  queue: string
  tenant_id: string
  name: string
  payload: Jsonb
  priority: Priority
  status: TaskStatus
  /** The schedule that produced the task. */
  schedule: string | null
  /** When the task becomes claimable (the spec's scheduled_at). */
  scheduled_at: Timestamp
  timeout_ms: number
  max_retries: number
  /** Failed attempts over the task's life (the length of `history`). */
  retry_count: Generated<number>
  /** Attempts started in the current budget, as the broker counts them. */
  attempt: Generated<number>
  idempotency_key: string | null
  idempotency_expires_at: OptionalTimestamp
  created_at: Timestamp
  /** When the last applied state change happened (orders replays). */
  updated_at: Timestamp
  /** When the broker confirmed it holds the task. */
  enqueued_at: OptionalTimestamp
  started_at: OptionalTimestamp
  /** When it reached a terminal status (the spec's completed_at). */
  completed_at: OptionalTimestamp
  dead_lettered_at: OptionalTimestamp
  /** When a dead-letter retry revived it; older changes are ignored. */
  revived_at: OptionalTimestamp
  result: OptionalJsonb
  /** ErrorInfo of the latest failed attempt. */
  error: OptionalJsonb
  /** AttemptRecord[] of failed attempts, oldest first. */
  history: ColumnType<unknown, string | undefined, string>
  worker_id: string | null
  /** Tasks sharing a lock key never run at the same time (migration 0003). */
  lock_key: string | null
  /** The latest ctx.progress value and when it was reported (migration 10). */
  progress: OptionalJsonb
  progress_at: OptionalTimestamp
}

export interface ApiKeysTable {
  id: string
  /** A hash of the secret; the secret itself is never stored. */
  key_hash: string
  tenant_id: string
  name: string | null
  scopes: ColumnType<string[], string[] | undefined, string[]>
  /** Requests per minute. */
  rate_limit: number | null
  monthly_quota: number | null
  is_active: Generated<boolean>
  created_at: DefaultTimestamp
  expires_at: OptionalTimestamp
  last_used_at: OptionalTimestamp
  /** The key's public first part (`tlk_…`), by which it is looked up (0004). */
  prefix: string | null
  /** When it was revoked (0004); revoked keys also have `is_active = false`. */
  revoked_at: OptionalTimestamp
}

/** The operator's settings per tenant (0006); null columns take the API's defaults. */
export interface TenantsTable {
  id: string
  /** Requests per minute for all of the tenant's keys together. */
  rate_limit: number | null
  /** Task submissions per calendar month (UTC) for all of the tenant's keys together. */
  monthly_quota: number | null
  /** The scopes the tenant's keys may hold ('admin' included or not); null: every tenant scope. */
  scopes: ColumnType<string[] | null, string[] | null | undefined, string[] | null>
  created_at: DefaultTimestamp
  updated_at: DefaultTimestamp
}

export interface WorkersTable {
  id: string
  queue: string
  status: 'active' | 'idle' | 'unhealthy' | 'stopped'
  hostname: string | null
  pid: number | null
  concurrency: number | null
  current_task_id: string | null
  /** int8: `pg` reads it as a string, PGlite as a number. */
  tasks_processed: ColumnType<string | number, string | number | undefined, string | number>
  last_heartbeat: Timestamp
  created_at: DefaultTimestamp
  /** Migration 0003. */
  tasks_in_hand: Generated<number>
  started_at: OptionalTimestamp
  heartbeat_ms: number | null
}

export interface SchedulesTable {
  queue: string
  id: string
  tenant_id: string
  task_name: string
  cron: string
  timezone: Generated<string>
  input: ColumnType<unknown, string | undefined, string>
  misfire: Generated<'skip' | 'run-once' | 'catch-up'>
  paused: Generated<boolean>
  /** { priority?, maxRetries?, timeoutMs? } for the tasks it submits. */
  options: ColumnType<unknown, string | undefined, string>
  /** The next tick to fire; null while paused. */
  next_run_at: OptionalTimestamp
  last_run_at: OptionalTimestamp
  created_at: Timestamp
  updated_at: Timestamp
}

export interface TaskDefinitionsTable {
  queue: string
  name: string
  /** The JSON Schema of the task's input (zod's `z.toJSONSchema`). */
  input_schema: Jsonb
  defaults: Jsonb
  /** A hash of schema and defaults: a registration that changes nothing writes nothing. */
  version: string
  updated_at: Timestamp
}

export interface AuditLogTable {
  /** int8 identity: `pg` reads it as a string, PGlite as a number. */
  id: Generated<string | number>
  at: DefaultTimestamp
  tenant_id: string | null
  /** Who acted: an API key id, or 'system'. */
  actor: string | null
  /** e.g. 'task.submit', 'task.cancel', 'auth.failed', 'rate.limited'. */
  action: string
  target_id: string | null
  details: OptionalJsonb
  /** The HTTP request that caused the entry (0004). */
  request_id: string | null
}

export interface MigrationsTable {
  version: number
  name: string
  applied_at: DefaultTimestamp
}

export interface Database {
  tasks: TasksTable
  api_keys: ApiKeysTable
  tenants: TenantsTable
  workers: WorkersTable
  schedules: SchedulesTable
  task_definitions: TaskDefinitionsTable
  audit_log: AuditLogTable
  taskloom_migrations: MigrationsTable
  fences: FencesTable
  task_logs: TaskLogsTable
}

/** ctx.log lines (migration 10). */
export interface TaskLogsTable {
  queue: string
  task_id: string
  token: ColumnType<string | number, string | number, string | number>
  seq: number
  at: Timestamp
  line: string
}

/** The highest fencing token each queue's broker may issue (migration 7). */
export interface FencesTable {
  queue: string
  ceiling: ColumnType<string, string, string>
  updated_at: DefaultTimestamp
}

/**
 * The Store contract: the durable record of one queue's tasks. `PostgresStore` implements it over
 * PostgreSQL (`pg`) or PGlite; both pass one conformance suite (test/store/conformance.ts).
 *
 * The Store never sees the broker. The queue writes a task here first (`insertTasks`), then hands it
 * to the broker; state changes flow back from the broker in batches (`applyUpdates`), and the first
 * of them confirms the hand-off. Rows still unconfirmed after a grace period are handed over again
 * by reconciliation, which confirms them (`markEnqueued`). Times are epoch milliseconds. Batch methods answer item by item, in order.
 *
 * Payloads and results cross this boundary as JSON text: what the queue serialised or, when the queue
 * encrypts, a JSON value holding the ciphertext envelope (e.g. `JSON.stringify(envelope)`). They are
 * kept as `jsonb`, so SQL can look inside plain payloads, and come back as JSON text that is equal as
 * JSON but not byte for byte (jsonb normalises whitespace and key order, and rejects `\u0000`).
 */
import type { DependencyEdge } from '../task/dependency-model.js'
import type {
  AttemptRecord,
  ErrorInfo,
  Priority,
  TaskChange,
  TaskLogLine,
  TaskOutput,
  TaskStatus,
} from '../task/model.js'

/** A task to record. Structurally a superset of the broker's `NewTask`, so one object serves both. */
export interface NewTaskRow {
  id: string
  name: string
  tenantId: string
  /** JSON text. */
  payload: string
  priority: Priority
  /** When the task becomes claimable. After `createdAt`: stored `pending`, else `queued`. */
  runAt: number
  timeoutMs: number
  maxRetries: number
  createdAt: number
  /** At most one task per (queue, tenantId, idempotencyKey) until the key expires. */
  idempotencyKey?: string | undefined
  /** The key expires at `createdAt + idempotencyTtlMs`; after that a new task may take it. */
  idempotencyTtlMs: number
  /** The schedule that produced this task, when one did. */
  schedule?: string | undefined
  /** Tasks sharing a lock key never run at the same time. */
  lockKey?: string | undefined
}

export interface InsertResult {
  /** The new task's id, or the existing task's when `deduplicated`. */
  id: string
  status: TaskStatus
  createdAt: number
  /**
   * True when a live idempotency key matched another task. Inserting an id that is already stored
   * is a no-op answered with the stored row and `deduplicated: false`, so a retried write is harmless.
   */
  deduplicated: boolean
  /**
   * With `deduplicated`: whether the broker has confirmed the existing task (`enqueuedAt` set). False
   * means it may never have reached the broker (its submitter died between the insert and the
   * hand-off), so the queue hands it over again at once (enqueue is idempotent by id).
   */
  confirmed?: boolean | undefined
}

/**
 * One state change reported by the broker. How updates are ordered, so that a replay or a late
 * batch never moves a task backwards:
 * - a terminal status (completed, failed, cancelled) always wins and is never overwritten;
 * - `processing` applies when its attempt is higher than the stored one (same attempt: when not older);
 * - `pending` and `queued` apply when not older than the last applied change (`at`); this covers a
 *   retry after a failed attempt and a released lease (where the broker lowers `attempt` again);
 * - `revive` (a dead-letter retry) is the one way out of `failed`; changes older than it are ignored.
 * Several updates for one task in one call are applied in the order given.
 */
export type TaskUpdate = TaskChange

/** The stored record of one task. */
export interface StoredTask {
  id: string
  queue: string
  tenantId: string
  name: string
  /** JSON text. */
  payload: string
  priority: Priority
  status: TaskStatus
  schedule?: string | undefined
  lockKey?: string | undefined
  /** When it became (or becomes) claimable. */
  runAt: number
  timeoutMs: number
  maxRetries: number
  /** Attempts started in the current budget. */
  attempt: number
  /** Failed attempts over the task's whole life (the history's length). */
  retryCount: number
  idempotencyKey?: string | undefined
  idempotencyExpiresAt?: number | undefined
  createdAt: number
  /** When the last state change happened. */
  updatedAt: number
  /** When the broker confirmed it holds the task; unset until then. */
  enqueuedAt?: number | undefined
  /** Start of the latest attempt. */
  startedAt?: number | undefined
  /** When it completed, was dead-lettered or was cancelled. */
  finishedAt?: number | undefined
  /** When it was dead-lettered (status `failed`). */
  deadLetteredAt?: number | undefined
  /** JSON text. */
  result?: string | undefined
  error?: ErrorInfo | undefined
  /** Failed attempts, oldest first. */
  history: AttemptRecord[]
  workerId?: string | undefined
  /** JSON text of the latest `ctx.progress` value (issue 17). */
  progress?: string | undefined
}

export interface ListFilter {
  tenantId?: string | undefined
  status?: TaskStatus | readonly TaskStatus[] | undefined
  name?: string | undefined
  /** Created at or after this time, epoch ms. */
  createdFrom?: number | undefined
  /** Created before this time, epoch ms. */
  createdTo?: number | undefined
  /** Default 50, at most 1000. */
  limit?: number | undefined
  /** Rows to skip (after the cursor, when both are given). */
  offset?: number | undefined
  /** `nextCursor` of the previous page. */
  cursor?: string | undefined
  /**
   * Count at most this many matches (`total` is then a lower bound when it equals the limit), so a
   * page over millions of rows does not count them all. Default: count every match.
   */
  countLimit?: number | undefined
}

export interface TaskPage {
  /** Newest first (created_at, then id, descending). */
  items: StoredTask[]
  /** Tasks matching the filter, ignoring limit, offset and cursor. */
  total: number
  /** Cursor of the next page, or null on the last one. */
  nextCursor: string | null
}

export interface CursorPage<T> {
  items: T[]
  nextCursor: string | null
}

export type MisfirePolicy = 'skip' | 'run-once' | 'catch-up'

/** What a schedule's tasks get instead of the task's defaults. */
export interface ScheduleTaskOptions {
  priority?: Priority | undefined
  maxRetries?: number | undefined
  timeoutMs?: number | undefined
  /** Each task the schedule submits carries this lock key (see SubmitOptions.lockKey). */
  lockKey?: string | undefined
}

/** The stored record of one cron schedule. */
export interface ScheduleRow {
  id: string
  tenantId: string
  taskName: string
  cron: string
  timezone: string
  /** JSON text of the input every task gets (encoded as the queue encodes payloads). */
  input: string
  misfire: MisfirePolicy
  paused: boolean
  options: ScheduleTaskOptions
  /** The next tick to fire; null while paused. */
  nextRunAt: number | null
  lastRunAt: number | null
  createdAt: number
  updatedAt: number
}

export interface ScheduleFilter {
  tenantId?: string | undefined
  limit?: number | undefined
  offset?: number | undefined
}

/** A task definition as a worker registered it. */
export interface DefinitionRow {
  name: string
  /** JSON Schema (draft 2020-12) of the input, as zod's `z.toJSONSchema` writes it. */
  inputSchema: unknown
  defaults: { priority: Priority; maxRetries: number; timeoutMs: number }
  /** A hash of schema and defaults. */
  version: string
  updatedAt: number
}

export interface Store {
  /** The queue whose tasks this store records; every method is scoped to it. */
  readonly queue: string

  /**
   * Records new tasks before the broker sees them. Concurrent calls share one INSERT (group commit).
   * A live idempotency key answers the existing task instead (`deduplicated`); an expired key is
   * released from its old task and taken by the new one.
   */
  insertTasks(rows: readonly NewTaskRow[]): Promise<InsertResult[]>

  /** Notes that the broker holds these tasks. Concurrent calls share one UPDATE. Idempotent. */
  markEnqueued(ids: readonly string[], at: number): Promise<void>

  /** Applies state changes from the broker (see `TaskUpdate`). Answers how many were applied. */
  applyUpdates(updates: readonly TaskUpdate[]): Promise<number>

  /** One task, or null. With `tenantId`, another tenant's task is null too. */
  get(id: string, tenantId?: string): Promise<StoredTask | null>

  list(filter?: ListFilter): Promise<TaskPage>

  /** Tasks not yet terminal (for re-enqueue after Redis lost its data), in id order. */
  listUnfinished(cursor: string | null, limit: number): Promise<CursorPage<StoredTask>>

  /** The stored rows of these ids (those that exist), in no particular order. */
  getMany(ids: readonly string[]): Promise<StoredTask[]>
  /** The dependency edges of these tasks (migration 9), by task id; tasks without any are left out. */
  dependencyEdges(ids: readonly string[]): Promise<Map<string, DependencyEdge[]>>

  /**
   * Reserves the next block of fencing tokens: raises the queue's recorded ceiling to at least
   * `floor`, adds `block`, and answers the new ceiling. The broker may issue tokens up to the
   * answered ceiling only; concurrent reservations get disjoint blocks.
   */
  reserveFences(floor: number, block: number): Promise<number>

  /** Flow control: the queue's paused scopes ('q', 'n:<task name>', 'g:<group>'). */
  flowPauses(): Promise<string[]>
  /** Records (or lifts) the pause of a scope, before the broker applies it. */
  setFlowPause(scope: string, paused: boolean): Promise<void>

  /**
   * Tasks stored but never confirmed by the broker and created before `olderThan` (the reconciler
   * passes now minus a grace period), oldest first.
   */
  listUnenqueued(olderThan: number, limit: number): Promise<StoredTask[]>

  /**
   * Deletes tasks that finished before `olderThan` (and whose idempotency key has expired by then),
   * `batchSize` rows per statement so no statement holds locks for long. Answers how many went.
   */
  purgeFinished(olderThan: number, batchSize?: number): Promise<number>

  /**
   * Creates a schedule, or changes the definition of an existing one of the same tenant, in one
   * statement that reads nothing beforehand: an existing row keeps `paused`, `lastRunAt`,
   * `createdAt`, and its pending tick unless `cron` or `timezone` changed (then `row.nextRunAt` is
   * taken; null while paused). So a concurrent pause, resume or advance is never undone. Answers the
   * stored row, or null when the id belongs to another tenant (nothing changes).
   */
  upsertSchedule(row: ScheduleRow): Promise<ScheduleRow | null>

  /** Creates a schedule unless one with its id exists (then null, and nothing changes). */
  insertSchedule(row: ScheduleRow): Promise<ScheduleRow | null>

  getSchedule(id: string): Promise<ScheduleRow | null>

  /** Oldest first (created_at, id). */
  listSchedules(filter?: ScheduleFilter): Promise<ScheduleRow[]>

  /** Pauses (the pending tick goes) in one statement. False when there is no such schedule. */
  pauseSchedule(id: string, at: number): Promise<boolean>

  /**
   * Resumes a paused schedule at `nextRunAt`, only if it is still paused and still has the `cron`
   * and `timezone` that tick was computed from (compare and set). False otherwise.
   */
  resumeSchedule(
    id: string,
    expect: { cron: string; timezone: string },
    nextRunAt: number | null,
    at: number,
  ): Promise<boolean>

  removeSchedule(id: string): Promise<boolean>

  /** Unpaused schedules whose next tick is at or before `before`, earliest first. */
  dueSchedules(before: number, limit: number): Promise<ScheduleRow[]>

  /**
   * Moves a schedule on from the tick `from` to `next`, only if its next tick is still `from`
   * (compare and set, so two schedulers cannot both advance it). `next` null: the expression fires
   * no more. Answers whether it moved.
   */
  advanceSchedule(id: string, from: number, next: number | null, lastRunAt: number | null): Promise<boolean>

  /** Records a definition unless the stored one has the same version; answers whether it changed. */
  putDefinition(row: DefinitionRow): Promise<boolean>

  getDefinition(name: string): Promise<DefinitionRow | null>

  /** By name. */
  listDefinitions(): Promise<DefinitionRow[]>

  /** Flushes pending writes, then releases connections the store opened (not ones passed in). */
  close(): Promise<void>

  /** Upserts workers' heartbeats into the workers table (fleet). */
  recordWorkers(rows: readonly WorkerRow[]): Promise<void>

  // --- Task output (issue 17) ---
  /**
   * Records progress values and log lines from the change feed, keeping each task's last `maxLines`
   * lines. Replays are harmless (see ./postgres/task-output.ts); output of unknown tasks is dropped.
   */
  applyOutputs(outputs: readonly TaskOutput[], maxLines: number): Promise<void>
  /** The task's stored log lines, oldest first (token, then seq). */
  logs(id: string): Promise<TaskLogLine[]>
}

/** One worker's latest heartbeat, for the workers table. */
export interface WorkerRow {
  id: string
  status: 'active' | 'idle' | 'unhealthy' | 'stopped'
  hostname: string
  pid: number
  concurrency: number
  tasksInHand: number
  tasksProcessed: number
  heartbeatMs: number
  lastHeartbeat: number
  startedAt: number
}

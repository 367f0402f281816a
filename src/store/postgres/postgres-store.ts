/**
 * `PostgresStore`: the Store over kysely, on PostgreSQL (`pg`) or embedded PGlite. Writes go through
 * group commit (concurrent calls share one statement); reads are plain indexed queries.
 */

import { Kysely, sql } from 'kysely'
import { TaskloomError } from '../../errors.js'
import type { DependencyEdge } from '../../task/dependency-model.js'
import { TASK_STATUSES, type TaskLogLine, type TaskOutput, type TaskStatus } from '../../task/model.js'
import { orTimeout, TIMED_OUT } from '../../util/or-timeout.js'
import { GroupCommit } from '../batch.js'
import type {
  CursorPage,
  DefinitionRow,
  InsertResult,
  ListFilter,
  NewTaskRow,
  ScheduleFilter,
  ScheduleRow,
  Store,
  StoredTask,
  TaskPage,
  TaskUpdate,
  WorkerRow,
} from '../store.js'
import { applyUpdates } from './apply-updates.js'
import { chooseDialect, type PoolSettings, type PostgresInput } from './connection.js'
import { listFlowPauses, setFlowPause } from './flow-pauses.js'
import { dependencyEdges } from './flow-rows.js'
import { insertTasks } from './insert-tasks.js'
import { assertSchemaCurrent, checkSchemaName, DEFAULT_SCHEMA, migrate } from './migrator.js'
import { DefinitionRows, ScheduleRows } from './schedule-rows.js'
import type { Database } from './tables.js'
import { applyOutputs, readLogs } from './task-output.js'
import { TASK_COLUMNS, type TaskRow, timestamp, toStoredTask, UNFINISHED_SQL } from './task-rows.js'

export interface QueryEvent {
  sql: string
  durationMs: number
  error?: unknown
}

export interface PostgresStoreOptions extends PoolSettings {
  /**
   * Where the record lives: a postgres:// URL or a `pg.Pool` (PostgreSQL), or omitted, `{ dataDir }`
   * or `{ pglite }` (embedded PGlite; in memory unless `dataDir` is given). Default: in-memory PGlite.
   */
  postgres?: PostgresInput | undefined
  /** The queue whose tasks this store records. Default 'default'. */
  queue?: string | undefined
  /** The PostgreSQL schema of taskloom's tables. Default 'taskloom'. */
  schema?: string | undefined
  /**
   * Apply missing migrations when opening. Default: true for PGlite, false for PostgreSQL, where an
   * older schema is refused (SCHEMA_OUTDATED) with a message saying how to migrate.
   */
  migrate?: boolean | undefined
  /** Most rows in one INSERT or UPDATE. Default 1000. */
  maxBatchRows?: number | undefined
  /** Called after every statement (metrics, tests). */
  onQuery?: ((event: QueryEvent) => void) | undefined
  /**
   * Write a `task.status` entry to audit_log for every status change the store records, in the
   * statement that records it. Default false.
   */
  auditStatusChanges?: boolean | undefined
}

/** See `PoolSettings.queryTimeoutMs`. */
export const DEFAULT_QUERY_TIMEOUT_MS = 5000

const MAX_LIST_LIMIT = 1000
const DEFAULT_LIST_LIMIT = 50

/** Opens a store: connects, checks (or migrates) the schema, and answers the ready store. */
export async function openPostgresStore(options: PostgresStoreOptions = {}): Promise<PostgresStore> {
  const schema = checkSchemaName(options.schema ?? DEFAULT_SCHEMA)
  const queue = options.queue ?? 'default'
  if (queue.length === 0 || queue.length > 200) {
    throw new TaskloomError('INVALID_OPTIONS', 'queue must be 1 to 200 characters', {
      issues: [{ path: 'queue', message: 'expected 1 to 200 characters' }],
    })
  }
  const { dialect, kind, deadline } = chooseDialect(options.postgres, options)
  const onQuery = options.onQuery
  const db = new Kysely<Database>({
    dialect,
    log: onQuery
      ? (event) =>
          onQuery({
            sql: event.query.sql,
            durationMs: event.queryDurationMillis,
            ...(event.level === 'error' ? { error: event.error } : {}),
          })
      : undefined,
  })
  try {
    if (options.migrate ?? kind === 'pglite') await migrate(db, { schema })
    else await assertSchemaCurrent(db, { schema })
  } catch (err) {
    await db.destroy()
    throw err
  }
  // Bounded from here on: migrations may legitimately take long, the calls that follow may not.
  const queryTimeoutMs =
    kind === 'postgres' ? (options.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS) : undefined
  deadline.ms = queryTimeoutMs
  return new PostgresStore(db, {
    schema,
    queue,
    kind,
    queryTimeoutMs,
    maxBatchRows: options.maxBatchRows ?? 1000,
    auditStatusChanges: options.auditStatusChanges ?? false,
  })
}

/** A data error (SQLSTATE class 22 or 23): one caller's bad row, not a broken connection. */
function isDataError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && (code.startsWith('22') || code.startsWith('23'))
}

export class PostgresStore implements Store {
  readonly queue: string
  readonly schema: string
  /** Which engine answers: a PostgreSQL server or embedded PGlite. */
  readonly kind: 'postgres' | 'pglite'
  /** The kysely instance, for the rest of taskloom's tables (api_keys, schedules, audit_log…). */
  readonly db: Kysely<Database>
  readonly #inserts: GroupCommit<NewTaskRow, InsertResult>
  readonly #enqueued: GroupCommit<{ id: string; at: number }, null>
  readonly #updates: GroupCommit<TaskUpdate, boolean>
  #closing: Promise<void> | undefined
  /** Rows inserted since open, and the count at which statistics are refreshed next. */
  #inserted = 0
  #exclusive: Promise<void> | undefined
  #releaseExclusive: (() => void) | undefined
  #analyzeAt = 1000
  #analyzing: Promise<void> | undefined
  readonly #schedules: ScheduleRows
  readonly #definitions: DefinitionRows
  readonly #timeoutMs: number | undefined
  /** The bound on each call (PostgreSQL), or undefined (PGlite runs in-process). */
  readonly queryTimeoutMs: number | undefined

  constructor(
    db: Kysely<Database>,
    options: {
      schema: string
      queue: string
      kind: 'postgres' | 'pglite'
      maxBatchRows: number
      auditStatusChanges?: boolean
      /** Bound on every call (group-commit waits included); see `PoolSettings.queryTimeoutMs`. */
      queryTimeoutMs?: number | undefined
    },
  ) {
    this.db = db
    this.schema = options.schema
    this.queue = options.queue
    this.kind = options.kind
    const maxItems = options.maxBatchRows
    const timeoutMs = options.queryTimeoutMs
    this.#timeoutMs = timeoutMs
    this.queryTimeoutMs = timeoutMs
    const timeoutError = () => storeTimeout(timeoutMs)
    this.#inserts = new GroupCommit({
      maxItems,
      // Two inserts in flight let one batch form while the other commits; PGlite has one connection.
      concurrency: options.kind === 'postgres' ? 2 : 1,
      isolate: isDataError,
      timeoutMs,
      timeoutError,
      write: async (rows) => {
        const results = await insertTasks(db, this.schema, this.queue, rows)
        this.#grew(rows.length)
        return results
      },
    })
    this.#schedules = new ScheduleRows(db, this.schema, this.queue)
    this.#definitions = new DefinitionRows(db, this.schema, this.queue)
    this.#enqueued = new GroupCommit({
      maxItems,
      timeoutMs,
      timeoutError,
      write: (items) => this.#markEnqueued(items),
    })
    this.#updates = new GroupCommit({
      maxItems,
      isolate: isDataError,
      timeoutMs,
      timeoutError,
      write: (updates) => applyUpdates(db, this.schema, this.queue, updates, options.auditStatusChanges),
    })
  }

  insertTasks(rows: readonly NewTaskRow[]): Promise<InsertResult[]> {
    return this.#inserts.add(rows)
  }

  async markEnqueued(ids: readonly string[], at: number): Promise<void> {
    await this.#enqueued.add(ids.map((id) => ({ id, at })))
  }

  async applyUpdates(updates: readonly TaskUpdate[]): Promise<number> {
    const applied = await this.#updates.add(updates)
    return applied.filter(Boolean).length
  }

  // --- Task output (issue 17; ./task-output.ts) ---

  async applyOutputs(outputs: readonly TaskOutput[], maxLines: number): Promise<void> {
    if (outputs.length > 0) await applyOutputs(this.db, this.schema, this.queue, outputs, maxLines)
  }

  logs(id: string): Promise<TaskLogLine[]> {
    return this.#bounded(readLogs(this.db, this.schema, this.queue, id))
  }

  async get(id: string, tenantId?: string): Promise<StoredTask | null> {
    return this.#bounded(this.#get(id, tenantId))
  }

  async #get(id: string, tenantId?: string): Promise<StoredTask | null> {
    let query = this.#tasks().select(TASK_COLUMNS).where('id', '=', id).where('queue', '=', this.queue)
    if (tenantId !== undefined) query = query.where('tenant_id', '=', tenantId)
    const row = await query.executeTakeFirst()
    return row ? toStoredTask(row) : null
  }

  list(filter: ListFilter = {}): Promise<TaskPage> {
    return this.#bounded(this.#list(filter))
  }

  async #list(filter: ListFilter): Promise<TaskPage> {
    const limit = Math.min(Math.max(1, Math.floor(filter.limit ?? DEFAULT_LIST_LIMIT)), MAX_LIST_LIMIT)
    const offset = Math.max(0, Math.floor(filter.offset ?? 0))
    // Each status once ([] or none given: no status filter): the merge below reads one slice per status.
    const statuses = [
      ...new Set(
        filter.status === undefined
          ? []
          : typeof filter.status === 'string'
            ? [filter.status]
            : filter.status,
      ),
    ]
    for (const status of statuses)
      if (!TASK_STATUSES.includes(status)) throw invalidInput('status', `unknown status ${status}`)

    let base = this.#tasks().where('queue', '=', this.queue)
    if (filter.tenantId !== undefined) base = base.where('tenant_id', '=', filter.tenantId)
    if (filter.name !== undefined) base = base.where('name', '=', filter.name)
    if (filter.createdFrom !== undefined) base = base.where('created_at', '>=', timestamp(filter.createdFrom))
    if (filter.createdTo !== undefined) base = base.where('created_at', '<', timestamp(filter.createdTo))
    if (statuses.length > 0) base = base.where('status', 'in', statuses as TaskStatus[])

    const after = filter.cursor === undefined ? undefined : decodeCursor(filter.cursor)
    const before = <Q extends typeof base>(query: Q) =>
      after
        ? (query.where(sql<boolean>`(created_at, id) < (${timestamp(after[0])}, ${after[1]})`) as Q)
        : query
    // The indexes lead with (queue[, tenant], status): one status reads its slice in index order and
    // stops at the limit. Several statuses (or all) are read as the keys of the newest rows of each,
    // from the index alone, merged, and only the page's rows are then fetched; so a tenant with
    // millions of finished tasks pages as fast as one with a few, and a deep offset reads keys only.
    let read: Promise<TaskRow[]>
    if (statuses.length === 1) {
      read = before(base)
        .select(TASK_COLUMNS)
        .orderBy('created_at', 'desc')
        .orderBy('id', 'desc')
        .limit(limit + 1)
        .offset(offset)
        .execute()
    } else {
      const slices = (statuses.length === 0 ? TASK_STATUSES : statuses).map((status) =>
        this.db
          .selectFrom(
            before(base.where('status', '=', status))
              .select(['created_at as page_at', 'id as page_id'])
              .orderBy('created_at', 'desc')
              .orderBy('id', 'desc')
              .limit(limit + 1 + offset)
              .as('slice'),
          )
          .selectAll(),
      )
      const page = this.db
        .selectFrom(slices.reduce((all, slice) => all.unionAll(slice)).as('merged'))
        .selectAll()
        .orderBy('page_at', 'desc')
        .orderBy('page_id', 'desc')
        .limit(limit + 1)
        .offset(offset)
      read = this.#tasks()
        .innerJoin(page.as('page'), 'page.page_id', 'tasks.id')
        .where('queue', '=', this.queue)
        .select(TASK_COLUMNS)
        .orderBy('page_at', 'desc')
        .orderBy('page_id', 'desc')
        .execute()
    }
    const [rows, count] = await Promise.all([
      read,
      filter.countLimit === undefined
        ? base.select(sql<string | number>`count(*)`.as('total')).executeTakeFirstOrThrow()
        : this.db
            .selectFrom(
              base
                .select(sql`1`.as('one'))
                .limit(Math.max(1, Math.floor(filter.countLimit)))
                .as('capped'),
            )
            .select(sql<string | number>`count(*)`.as('total'))
            .executeTakeFirstOrThrow(),
    ])
    const items = rows.slice(0, limit).map(toStoredTask)
    const last = items[items.length - 1]
    return {
      items,
      total: Number(count.total),
      nextCursor: rows.length > limit && last ? encodeCursor(last.createdAt, last.id) : null,
    }
  }

  async listUnfinished(cursor: string | null, limit: number): Promise<CursorPage<StoredTask>> {
    let query = this.#tasks()
      .select(TASK_COLUMNS)
      .where('queue', '=', this.queue)
      .where(sql<boolean>`status in ${UNFINISHED_SQL}`)
    if (cursor !== null) query = query.where('id', '>', cursor)
    const rows = await query.orderBy('id').limit(limit).execute()
    const items = rows.map(toStoredTask)
    return { items, nextCursor: items.length === limit ? items[items.length - 1]!.id : null }
  }

  async getMany(ids: readonly string[]): Promise<StoredTask[]> {
    if (ids.length === 0) return []
    const rows = await this.#tasks()
      .select(TASK_COLUMNS)
      .where('queue', '=', this.queue)
      .where('id', 'in', [...ids])
      .execute()
    return rows.map(toStoredTask)
  }

  async dependencyEdges(ids: readonly string[]): Promise<Map<string, DependencyEdge[]>> {
    return this.#bounded(dependencyEdges(this, ids))
  }

  async reserveFences(floor: number, block: number): Promise<number> {
    // One statement: concurrent reservations are serialised by the row lock, so blocks never overlap.
    const { rows } = await sql<{ ceiling: string }>`
      insert into ${sql.id(this.schema, 'fences')} as f (queue, ceiling)
      values (${this.queue}, ${String(floor + block)}::bigint)
      on conflict (queue) do update
        set ceiling = greatest(f.ceiling, ${String(floor)}::bigint) + ${String(block)}::bigint, updated_at = now()
      returning ceiling::text as ceiling`.execute(this.db)
    return Number(rows[0]!.ceiling)
  }

  flowPauses(): Promise<string[]> {
    return this.#bounded(listFlowPauses(this.db, this.schema, this.queue))
  }

  setFlowPause(scope: string, paused: boolean): Promise<void> {
    return this.#bounded(setFlowPause(this.db, this.schema, this.queue, scope, paused))
  }

  async listUnenqueued(olderThan: number, limit: number): Promise<StoredTask[]> {
    const rows = await this.#tasks()
      .select(TASK_COLUMNS)
      .where('queue', '=', this.queue)
      .where('enqueued_at', 'is', null)
      .where('created_at', '<', timestamp(olderThan))
      .where(sql<boolean>`status in ${UNFINISHED_SQL}`)
      .orderBy('created_at')
      .limit(limit)
      .execute()
    return rows.map(toStoredTask)
  }

  async purgeFinished(olderThan: number, batchSize = 1000): Promise<number> {
    const tasks = sql.id(this.schema, 'tasks')
    const before = timestamp(olderThan)
    let total = 0
    for (;;) {
      const result = await sql`delete from ${tasks} where id in (
        select id from ${tasks}
        where queue = ${this.queue} and completed_at < ${before}
          and (idempotency_expires_at is null or idempotency_expires_at < ${before})
        limit ${batchSize} for update skip locked)`.execute(this.db)
      const deleted = Number(result.numAffectedRows ?? 0)
      total += deleted
      if (deleted < batchSize) return total
    }
  }

  upsertSchedule(row: ScheduleRow): Promise<ScheduleRow | null> {
    return this.#bounded(this.#schedules.upsert(row))
  }

  insertSchedule(row: ScheduleRow): Promise<ScheduleRow | null> {
    return this.#bounded(this.#schedules.insert(row))
  }

  getSchedule(id: string): Promise<ScheduleRow | null> {
    return this.#bounded(this.#schedules.get(id))
  }

  listSchedules(filter?: ScheduleFilter): Promise<ScheduleRow[]> {
    return this.#bounded(this.#schedules.list(filter))
  }

  pauseSchedule(id: string, at: number): Promise<boolean> {
    return this.#bounded(this.#schedules.pause(id, at))
  }

  resumeSchedule(
    id: string,
    expect: { cron: string; timezone: string },
    nextRunAt: number | null,
    at: number,
  ): Promise<boolean> {
    return this.#bounded(this.#schedules.resume(id, expect, nextRunAt, at))
  }

  removeSchedule(id: string): Promise<boolean> {
    return this.#bounded(this.#schedules.remove(id))
  }

  dueSchedules(before: number, limit: number): Promise<ScheduleRow[]> {
    return this.#bounded(this.#schedules.due(before, limit))
  }

  advanceSchedule(id: string, from: number, next: number | null, lastRunAt: number | null): Promise<boolean> {
    return this.#bounded(this.#schedules.advance(id, from, next, lastRunAt))
  }

  putDefinition(row: DefinitionRow): Promise<boolean> {
    return this.#bounded(this.#definitions.put(row))
  }

  getDefinition(name: string): Promise<DefinitionRow | null> {
    return this.#bounded(this.#definitions.get(name))
  }

  listDefinitions(): Promise<DefinitionRow[]> {
    return this.#bounded(this.#definitions.list())
  }

  /**
   * Takes a session-level advisory lock on (schema, queue) for as long as the store is open, on a
   * connection of its own. Answers false when another session holds it. PGlite has one session: true.
   * A queue on the in-process broker needs this: its tasks live in this process alone, and a second
   * process restoring the same rows would run them twice.
   */
  holdExclusive(): Promise<boolean> {
    if (this.kind !== 'postgres') return Promise.resolve(true)
    const key = `taskloom:${this.schema}:${this.queue}`
    return new Promise<boolean>((resolve, reject) => {
      this.#exclusive = this.db
        .connection()
        .execute(async (conn) => {
          const { rows } = await sql<{ ok: boolean }>`
            select pg_try_advisory_lock(hashtextextended(${key}, 0)) as ok`.execute(conn)
          const ok = rows[0]?.ok === true
          resolve(ok)
          if (!ok) return
          await new Promise<void>((release) => (this.#releaseExclusive = release))
          await sql`select pg_advisory_unlock(hashtextextended(${key}, 0))`.execute(conn)
        })
        .catch((err: unknown) => reject(err))
    })
  }

  async recordWorkers(rows: readonly WorkerRow[]): Promise<void> {
    if (rows.length === 0) return
    const at = (ms: number) => new Date(ms)
    await this.db
      .withSchema(this.schema)
      .insertInto('workers')
      .values(
        rows.map((w) => ({
          id: w.id,
          queue: this.queue,
          status: w.status,
          hostname: w.hostname,
          pid: w.pid,
          concurrency: w.concurrency,
          tasks_in_hand: w.tasksInHand,
          tasks_processed: w.tasksProcessed,
          heartbeat_ms: w.heartbeatMs,
          last_heartbeat: at(w.lastHeartbeat),
          started_at: at(w.startedAt),
        })),
      )
      .onConflict((oc) =>
        oc.column('id').doUpdateSet((eb) => ({
          status: eb.ref('excluded.status'),
          concurrency: eb.ref('excluded.concurrency'),
          tasks_in_hand: eb.ref('excluded.tasks_in_hand'),
          tasks_processed: eb.ref('excluded.tasks_processed'),
          heartbeat_ms: eb.ref('excluded.heartbeat_ms'),
          last_heartbeat: eb.ref('excluded.last_heartbeat'),
        })),
      )
      .execute()
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#releaseExclusive?.()
      await this.#exclusive?.catch(() => {})
      await Promise.all([this.#inserts.close(), this.#enqueued.close(), this.#updates.close()])
      await this.#analyzing
      await this.db.destroy()
    })()
    return this.#closing
  }

  /**
   * Refreshes the planner's statistics as the table grows (at 1 k, 4 k, 16 k… rows inserted). A fresh
   * table has none, and the planner then takes a whole queue for a few rows and scans it on every
   * batched UPDATE. PGlite has no autovacuum to fix that; on a server this only gets there sooner.
   */
  #grew(rows: number): void {
    this.#inserted += rows
    if (this.#inserted < this.#analyzeAt || this.#analyzing) return
    this.#analyzeAt = this.#inserted * 4
    this.#analyzing = sql`analyze ${sql.id(this.schema, 'tasks')}`
      .execute(this.db)
      .then(
        () => {},
        () => {}, // best effort: a role that does not own the table gets a warning, not stats
      )
      .finally(() => {
        this.#analyzing = undefined
      })
  }

  /**
   * A request-path read (or a schedule change) that fails with STORE_UNAVAILABLE once
   * `queryTimeoutMs` has passed, however long it waited for a connection; the statement's own
   * bound closes the connection if it is still waiting.
   */
  async #bounded<T>(call: Promise<T>): Promise<T> {
    if (this.#timeoutMs === undefined) return call
    const answer = await orTimeout(call, this.#timeoutMs)
    if (answer === TIMED_OUT) {
      call.catch(() => {}) // it settles later; its error is the one already reported
      throw storeTimeout(this.#timeoutMs)
    }
    return answer
  }

  #tasks() {
    return this.db.withSchema(this.schema).selectFrom('tasks')
  }

  async #markEnqueued(items: { id: string; at: number }[]): Promise<null[]> {
    // One UPDATE uses one source row per target row, so keep only each id's earliest confirmation.
    const earliest = new Map<string, number>()
    for (const { id, at } of items) earliest.set(id, Math.min(at, earliest.get(id) ?? at))
    await sql`update ${sql.id(this.schema, 'tasks')} as t set enqueued_at = to_timestamp(u.at / 1000)
      from unnest(${[...earliest.keys()]}::text[], ${[...earliest.values()]}::float8[]) as u(id, at)
      where t.queue = ${this.queue} and t.id = u.id and t.id = any(${[...earliest.keys()]}::text[])
        and t.enqueued_at is null`.execute(this.db)
    return new Array<null>(items.length).fill(null)
  }
}

/** What a store call answers when PostgreSQL did not within `queryTimeoutMs`. */
export function storeTimeout(ms: number | undefined): TaskloomError {
  return new TaskloomError(
    'STORE_UNAVAILABLE',
    `PostgreSQL did not answer within ${ms} ms (queryTimeoutMs)`,
    {
      retryable: true,
    },
  )
}

function encodeCursor(createdAt: number, id: string): string {
  return Buffer.from(JSON.stringify([createdAt, id])).toString('base64url')
}

function decodeCursor(cursor: string): [number, string] {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
    if (Array.isArray(value) && typeof value[0] === 'number' && typeof value[1] === 'string') {
      return [value[0], value[1]]
    }
  } catch {}
  throw invalidInput('cursor', 'not a cursor this store issued')
}

function invalidInput(path: string, message: string): TaskloomError {
  return new TaskloomError('INVALID_INPUT', `${path}: ${message}`, { issues: [{ path, message }] })
}

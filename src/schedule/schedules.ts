/**
 * `queue.schedules`: create, read, pause, resume and remove cron schedules. The store holds them;
 * every change is mirrored into the due cache the schedulers read (see due-cache.ts).
 */
import { z } from 'zod'
import { TaskloomError } from '../errors.js'
import type { Logger } from '../logger.js'
import type { MisfirePolicy, ScheduleRow, ScheduleTaskOptions, Store } from '../store/store.js'
import { MAX_RETRIES_LIMIT, MAX_TIMEOUT_MS, type TaskDefinition } from '../task/define-task.js'
import { PRIORITIES, type Priority } from '../task/model.js'
import { checkInput, checkText, KEY, TENANT_ID, TEXT } from '../task/validate.js'
import { checkCron, checkTimezone, nextTick } from './cron.js'
import type { DueCache } from './due-cache.js'

/** Compare-and-set rounds a resume makes while other changes keep landing in between. */
const RESUME_ATTEMPTS = 10

export const MISFIRE_POLICIES = ['skip', 'run-once', 'catch-up'] as const

export interface ScheduleInfo {
  id: string
  cron: string
  taskName: string
  input: unknown
  timezone: string
  misfire: MisfirePolicy
  paused: boolean
  tenantId: string | null
  /** Overrides of the task's defaults for the tasks this schedule submits. */
  options: ScheduleTaskOptions
  nextRunAt: Date | null
  lastRunAt: Date | null
  createdAt: Date
  updatedAt: Date
}

export interface ScheduleInput {
  /** Unique within the queue: 1-200 letters, digits, '.', '_', ':', '@' or '-'. */
  id: string
  /** Five fields (minute first) or six (seconds first). */
  cron: string
  /** A task made by defineTask, or the name of one a worker registered (see queue.definitions). */
  task: TaskDefinition<any, any> | string
  input?: unknown
  /** IANA time zone the expression is read in. Default 'UTC'. */
  timezone?: string
  /** What to do with ticks missed while no scheduler ran. Default 'run-once'. */
  misfire?: MisfirePolicy
  tenantId?: string
  options?: { priority?: Priority; maxRetries?: number; timeoutMs?: number; lockKey?: string }
}

export interface ScheduleListOptions {
  tenantId?: string
  /** Default 50, at most 1000. */
  limit?: number
  offset?: number
}

export interface Schedules {
  /** Creates or replaces a schedule. An unchanged cron and time zone keep the pending tick. */
  upsert(s: ScheduleInput): Promise<ScheduleInfo>
  /**
   * Creates the schedule unless its id exists: then answers the existing one, unchanged, with
   * `created: false` (one atomic insert, so concurrent calls make one schedule).
   */
  create(s: ScheduleInput): Promise<{ schedule: ScheduleInfo; created: boolean }>
  get(id: string): Promise<ScheduleInfo | null>
  /** Oldest first. */
  list(opts?: ScheduleListOptions): Promise<ScheduleInfo[]>
  /** Stops firing until `resume`; false when there is no such schedule. */
  pause(id: string): Promise<boolean>
  /** Fires again from the next future tick (ticks missed while paused are not made up). */
  resume(id: string): Promise<boolean>
  remove(id: string): Promise<boolean>
}

/** What the schedules need from their queue. */
export interface ScheduleHost {
  /** The open store; INVALID_STATE when the queue has none. */
  store(): Promise<Store>
  cache(): DueCache
  encode(value: unknown, taskName: string): string
  decode(text: string): unknown
  defaultTenantId: string
  resolve(name: string): Promise<TaskDefinition<unknown, unknown> | null>
  logger: Logger
}

export const SCHEDULE_ID = z
  .string()
  .regex(/^[A-Za-z0-9._:@-]{1,200}$/, "1-200 letters, digits, '.', '_', ':', '@' or '-'")

const inputSchema = z.strictObject({
  id: SCHEDULE_ID,
  cron: TEXT,
  task: z.union([TEXT.min(1).max(200), z.object({ name: z.string() }).loose()]),
  input: z.unknown().optional(),
  timezone: TEXT.optional(),
  misfire: z.enum(MISFIRE_POLICIES).optional(),
  tenantId: TENANT_ID.optional(),
  options: z
    .strictObject({
      priority: z.enum(PRIORITIES).optional(),
      maxRetries: z.number().int().min(0).max(MAX_RETRIES_LIMIT).optional(),
      timeoutMs: z.number().int().min(1).max(MAX_TIMEOUT_MS).optional(),
      lockKey: KEY.optional(),
    })
    .optional(),
})

function invalid(error: z.ZodError, what: string): TaskloomError {
  const issues = error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message }))
  const text = issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ')
  return new TaskloomError('INVALID_OPTIONS', `invalid ${what}: ${text}`, { issues })
}

function checkId(id: unknown): string {
  const parsed = SCHEDULE_ID.safeParse(id)
  if (!parsed.success) throw invalid(parsed.error, 'schedule id')
  return parsed.data
}

export function createSchedules(host: ScheduleHost): Schedules {
  const info = (row: ScheduleRow): ScheduleInfo => ({
    id: row.id,
    cron: row.cron,
    taskName: row.taskName,
    input: host.decode(row.input),
    timezone: row.timezone,
    misfire: row.misfire,
    paused: row.paused,
    tenantId: row.tenantId,
    options: row.options,
    nextRunAt: row.nextRunAt === null ? null : new Date(row.nextRunAt),
    lastRunAt: row.lastRunAt === null ? null : new Date(row.lastRunAt),
    createdAt: new Date(row.createdAt),
    updatedAt: new Date(row.updatedAt),
  })

  async function taskOf(task: ScheduleInput['task']): Promise<TaskDefinition<unknown, unknown>> {
    if (typeof task !== 'string') {
      if (!(task as TaskDefinition).input)
        throw new TaskloomError('UNKNOWN_TASK', 'schedules.upsert: task must be made by defineTask()')
      return task as TaskDefinition<unknown, unknown>
    }
    const found = await host.resolve(task)
    if (!found) {
      throw new TaskloomError(
        'UNKNOWN_TASK',
        `unknown task ${JSON.stringify(task)}: no worker registered it; pass the defineTask() definition or start a worker that handles it`,
        { issues: [{ path: 'task', message: 'unknown task name' }] },
      )
    }
    return found
  }

  // Ids are unique per queue: one tenant must not take over (or learn about) another's schedule.
  function assertOwner(existing: ScheduleRow | null, tenantId: string, id: string): void {
    if (existing && existing.tenantId !== tenantId) {
      throw new TaskloomError(
        'INVALID_STATE',
        `schedule ${id} belongs to another tenant; choose another id or remove it first`,
        { issues: [{ path: 'id', message: 'taken by another tenant' }] },
      )
    }
  }

  /**
   * Validates the input and builds the row a new schedule would be. An existing row's state (paused,
   * pending tick, last run) is never read here: the store keeps it inside its one statement.
   */
  async function rowFor(raw: ScheduleInput) {
    const parsed = inputSchema.safeParse(raw)
    if (!parsed.success) throw invalid(parsed.error, 'schedule')
    const s = parsed.data
    const timezone = checkTimezone(s.timezone ?? 'UTC')
    const cron = checkCron(s.cron, timezone)
    const task = await taskOf(raw.task)
    checkInput(task, s.input, 'input')
    checkText(task.name, s.input, 'input')
    const store = await host.store()
    const tenantId = s.tenantId ?? host.defaultTenantId
    return { store, row: buildRow(s, task, tenantId, cron, timezone, Date.now()) }
  }

  function buildRow(
    s: z.infer<typeof inputSchema>,
    task: TaskDefinition<unknown, unknown>,
    tenantId: string,
    cron: string,
    timezone: string,
    now: number,
  ): ScheduleRow {
    const nextRunAt = nextTick(cron, timezone, now)
    if (nextRunAt === null)
      throw new TaskloomError('INVALID_CRON', `cron expression "${cron}" never fires again`, {
        issues: [{ path: 'cron', message: 'no future tick' }],
      })
    const options: ScheduleTaskOptions = {
      priority: s.options?.priority ?? task.defaults.priority,
      maxRetries: s.options?.maxRetries ?? task.defaults.maxRetries,
      timeoutMs: s.options?.timeoutMs ?? task.defaults.timeoutMs,
    }
    if (s.options?.lockKey !== undefined) options.lockKey = s.options.lockKey
    return {
      id: s.id,
      tenantId,
      taskName: task.name,
      cron,
      timezone,
      input: host.encode(s.input ?? null, task.name),
      misfire: s.misfire ?? 'run-once',
      paused: false,
      options,
      nextRunAt,
      lastRunAt: null,
      createdAt: now,
      updatedAt: now,
    }
  }

  async function cached(row: ScheduleRow): Promise<ScheduleInfo> {
    if (row.nextRunAt !== null) await host.cache().put([{ id: row.id, at: row.nextRunAt }])
    else await host.cache().remove(row.id)
    return info(row)
  }

  return {
    async upsert(raw) {
      const { store, row } = await rowFor(raw)
      const stored = await store.upsertSchedule(row)
      if (!stored) assertOwner(await store.getSchedule(row.id), row.tenantId, row.id)
      // Null and no other tenant's row: it was removed between the statement and the read.
      if (!stored)
        throw new TaskloomError('INVALID_STATE', `schedule ${row.id} was removed while being changed`)
      return cached(stored)
    },

    async create(raw) {
      const { store, row } = await rowFor(raw)
      const old = await store.getSchedule(row.id)
      assertOwner(old, row.tenantId, row.id)
      if (old) return { schedule: info(old), created: false }
      const inserted = await store.insertSchedule(row)
      if (inserted) return { schedule: await cached(inserted), created: true }
      // Another call created it between our read and our insert: answer that one.
      const winner = await store.getSchedule(row.id)
      if (!winner)
        throw new TaskloomError('INVALID_STATE', `schedule ${row.id} was removed while being created`)
      assertOwner(winner, row.tenantId, row.id)
      return { schedule: info(winner), created: false }
    },

    async get(id) {
      const store = await host.store()
      const row = await store.getSchedule(checkId(id))
      return row ? info(row) : null
    },

    async list(opts = {}) {
      const limit = opts.limit ?? 50
      const offset = opts.offset ?? 0
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000 || !Number.isInteger(offset) || offset < 0) {
        throw new TaskloomError(
          'INVALID_OPTIONS',
          'limit must be an integer from 1 to 1000 and offset a non-negative integer',
        )
      }
      if (opts.tenantId !== undefined && !TENANT_ID.safeParse(opts.tenantId).success) {
        throw new TaskloomError('INVALID_OPTIONS', `invalid tenantId ${JSON.stringify(opts.tenantId)}`)
      }
      const store = await host.store()
      const rows = await store.listSchedules({ tenantId: opts.tenantId, limit, offset })
      return rows.map(info)
    },

    async pause(id) {
      const store = await host.store()
      const ok = await store.pauseSchedule(checkId(id), Date.now())
      if (ok) await host.cache().remove(id)
      return ok
    },

    async resume(id) {
      const store = await host.store()
      checkId(id)
      // Compare and set on (paused, cron, timezone): a change that lands between the read and the
      // update makes it miss, and the tick is computed again from what is stored now.
      for (let attempt = 0; attempt < RESUME_ATTEMPTS; attempt++) {
        const row = await store.getSchedule(id)
        if (!row) return false
        if (!row.paused) return true
        const now = Date.now()
        const next = nextTick(row.cron, row.timezone, now)
        if (await store.resumeSchedule(id, { cron: row.cron, timezone: row.timezone }, next, now)) {
          if (next !== null) await host.cache().put([{ id, at: next }])
          return true
        }
      }
      throw new TaskloomError(
        'INVALID_STATE',
        `schedule ${id} kept changing while being resumed; try again`,
        { retryable: true },
      )
    },

    async remove(id) {
      const store = await host.store()
      const ok = await store.removeSchedule(checkId(id))
      await host.cache().remove(id)
      return ok
    },
  }
}

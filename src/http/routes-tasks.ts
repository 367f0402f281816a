/** Task endpoints: submit (or schedule), status, result, cancel, list, and the tenant's quota. */
import { randomUUID } from 'node:crypto'
import type { z } from 'zod'
import { type Issue, TaskloomError } from '../errors.js'
import { sameSchedule } from '../queue/replay.js'
import type { TaskDefinition } from '../task/define-task.js'
import type { TaskStatus } from '../task/model.js'
import type { SubmitOptions } from '../task/validate.js'
import { taskBody } from './present.js'
import { HttpProblem } from './problem.js'
import type { Route, RouteContext } from './route.js'
import { saveSchedule, scheduleRoutes } from './routes-schedules.js'
import {
  CancelResponse,
  ListQuery,
  Quota,
  SCHEDULE_KEY,
  SCHEDULE_KEY_RULE,
  Schedule,
  SubmitTaskBody,
  SubmitTaskResponse,
  Task,
  TaskList,
  TaskLogs,
  TaskLogsQuery,
  TaskResultResponse,
} from './schemas.js'
import { quotaExceeded, quotaReport } from './tenant-limits.js'

/** Ids the API accepts in paths; anything else cannot name a task and is answered 404. */
export const ID = /^[A-Za-z0-9._:-]{1,200}$/

/** The caller's own task, or 404 (another tenant's task is 404 too, so existence does not leak). */
/** One page of the key's tenant's tasks, in the spec's list shape (`tasks`, `total`, `limit`, `offset`). */
export async function taskPage(
  ctx: RouteContext,
  filter: { status?: TaskStatus | undefined; name?: string | undefined; limit?: number; offset?: number },
) {
  const page = await ctx.services.queue.list({ ...filter, tenantId: ctx.key.tenantId })
  return {
    status: 200,
    body: { tasks: page.tasks.map(taskBody), total: page.total, limit: page.limit, offset: page.offset },
  }
}

export async function ownTask(ctx: RouteContext, id: string | undefined) {
  const task = id !== undefined && ID.test(id) ? await ctx.services.queue.get(id) : null
  if (!task || task.tenantId !== ctx.key.tenantId) throw new HttpProblem('NOT_FOUND', `no task ${id}`)
  return task
}

/** Renames the queue's `input.x` / `options.x` issue paths to the request's field names. */
function requestIssues(issues: readonly Issue[]): Issue[] {
  const fields: Record<string, string> = {
    timeoutMs: 'timeout',
    maxRetries: 'max_retries',
    idempotencyKey: 'idempotency_key',
    runAt: 'run_at',
  }
  return issues.map((i) => {
    if (i.path === 'input' || i.path.startsWith('input.')) return { ...i, path: `payload${i.path.slice(5)}` }
    if (i.path.startsWith('options.')) {
      const field = i.path.slice(8).split('.')[0]!
      return { ...i, path: fields[field] ?? field }
    }
    return i
  })
}

/** The registered task `name`, or UNKNOWN_TASK naming `path` (the request field that named it). */
export async function findTask(ctx: RouteContext, name: string, path = 'name') {
  const task = await ctx.services.findTask(name)
  if (!task) {
    throw new HttpProblem('UNKNOWN_TASK', `no task named ${JSON.stringify(name)} is registered`, {
      errors: [{ path, message: 'unknown task name' }],
    })
  }
  return task
}

/**
 * `POST /tasks` with `schedule`: creates a schedule, as `queue.submit` does. An idempotency key
 * names it (the tenant's schedule id), so a retried request answers the schedule it made (200,
 * `Idempotent-Replayed`) instead of making a second one.
 */
async function submitSchedule(
  ctx: RouteContext,
  task: TaskDefinition<any, any>,
  body: z.infer<typeof SubmitTaskBody>,
) {
  if (body.run_at !== undefined) {
    throw new HttpProblem(
      'INVALID_INPUT',
      'run_at cannot be combined with schedule: a schedule runs on its ticks',
      {
        errors: [{ path: 'run_at', message: 'not with schedule' }],
      },
    )
  }
  const key = body.idempotency_key
  if (key !== undefined) {
    if (!SCHEDULE_KEY.test(key)) {
      throw new HttpProblem('INVALID_INPUT', 'with schedule, idempotency_key names the schedule', {
        errors: [{ path: 'idempotency_key', message: SCHEDULE_KEY_RULE }],
      })
    }
  }
  const fields = {
    id: key ?? randomUUID(),
    cron: body.schedule!,
    payload: body.payload,
    priority: body.priority,
    timeout: body.timeout,
    max_retries: body.max_retries,
  }
  const { schedule, created } = await saveSchedule(ctx, task, fields, true)
  if (
    !created &&
    !sameSchedule(
      { taskName: schedule.name, cron: schedule.cron, input: schedule.payload },
      { name: task.name, cron: fields.cron, input: body.payload ?? null },
    )
  ) {
    throw new HttpProblem(
      'IDEMPOTENCY_CONFLICT',
      `idempotency key ${JSON.stringify(key)} names a schedule with another task, cron or payload; use a new key for a different schedule`,
      { errors: [{ path: 'idempotency_key', message: 'already used with another payload' }] },
    )
  }
  return created
    ? { status: 201, body: schedule }
    : { status: 200, body: schedule, headers: { 'idempotent-replayed': 'true' } }
}

async function submit(ctx: RouteContext) {
  const body = ctx.body as z.infer<typeof SubmitTaskBody>
  const { services, key } = ctx
  const task = await findTask(ctx, body.name)
  if (body.schedule !== undefined) return submitSchedule(ctx, task, body)
  const options: SubmitOptions = { tenantId: key.tenantId }
  if (body.priority !== undefined) options.priority = body.priority
  if (body.timeout !== undefined) options.timeoutMs = Math.max(1, Math.round(body.timeout * 1000))
  if (body.max_retries !== undefined) options.maxRetries = body.max_retries
  if (body.idempotency_key !== undefined) options.idempotencyKey = body.idempotency_key
  if (body.run_at !== undefined) options.runAt = Date.parse(body.run_at)

  // The core counted this request toward the tenant's and the key's quota; it is given back unless
  // a task is created.
  const exceeded = quotaExceeded(ctx)
  if (exceeded) throw exceeded
  let result: Awaited<ReturnType<typeof services.queue.submit>>
  try {
    result = await services.queue.submit(task, body.payload, options)
  } catch (err) {
    if (err instanceof TaskloomError && err.code === 'IDEMPOTENCY_CONFLICT') {
      throw new HttpProblem('IDEMPOTENCY_CONFLICT', err.message, {
        errors: [{ path: 'idempotency_key', message: 'already used with another task name or payload' }],
        cause: err,
      })
    }
    if (err instanceof TaskloomError && (err.code === 'INVALID_INPUT' || err.code === 'INVALID_OPTIONS')) {
      const errors = requestIssues(err.issues)
      const detail = errors.map((e) => `${e.path}: ${e.message}`).join('; ')
      throw new HttpProblem('INVALID_INPUT', `invalid task ${task.name}: ${detail}`, { errors })
    }
    throw err
  }
  if (!result.deduplicated) {
    ctx.quota?.keep()
    ctx.audit('task.submit', result.id, { name: task.name })
  }
  const out = { task_id: result.id, status: result.status, created_at: result.createdAt.toISOString() }
  return result.deduplicated
    ? { status: 200, body: out, headers: { 'idempotent-replayed': 'true' } }
    : { status: 201, body: out }
}

export const taskRoutes: Route[] = [
  {
    method: 'POST',
    path: '/tasks',
    scope: 'task:create',
    tag: 'tasks',
    summary: 'Submit a task, or with `schedule` create a cron schedule for it',
    body: SubmitTaskBody,
    responses: { 200: SubmitTaskResponse.or(Schedule), 201: SubmitTaskResponse.or(Schedule) },
    problems: [400, 413, 415, 422, 429, 501],
    countsQuota: true,
    handle: submit,
  },
  {
    method: 'GET',
    path: '/tasks',
    scope: 'task:list',
    tag: 'tasks',
    summary: "List the tenant's tasks, newest first",
    query: ListQuery,
    responses: { 200: TaskList },
    async handle(ctx) {
      const q = ListQuery.parse(Object.fromEntries(ctx.query))
      return taskPage(ctx, { status: q.status, name: q.name, limit: q.limit, offset: q.offset })
    },
  },
  {
    method: 'GET',
    path: '/tasks/:id',
    scope: 'task:read',
    tag: 'tasks',
    summary: "A task's status",
    responses: { 200: Task },
    problems: [404],
    async handle(ctx) {
      return { status: 200, body: taskBody(await ownTask(ctx, ctx.params.id)) }
    },
  },
  {
    method: 'GET',
    path: '/tasks/:id/result',
    scope: 'task:read',
    tag: 'tasks',
    summary: "A task's result (null until completed) or last error",
    responses: { 200: TaskResultResponse },
    problems: [404],
    async handle(ctx) {
      const t = await ownTask(ctx, ctx.params.id)
      return {
        status: 200,
        body: {
          task_id: t.id,
          status: t.status,
          result: t.status === 'completed' ? (t.result ?? null) : null,
          error: t.error ? `${t.error.name}: ${t.error.message}` : null,
        },
      }
    },
  },
  {
    method: 'GET',
    path: '/tasks/:id/logs',
    scope: 'task:read',
    tag: 'tasks',
    summary: "A task's log lines (ctx.log), oldest first: the last ones kept, paged or tailed",
    query: TaskLogsQuery,
    responses: { 200: TaskLogs },
    problems: [400, 404],
    async handle(ctx) {
      const q = TaskLogsQuery.parse(Object.fromEntries(ctx.query))
      const t = await ownTask(ctx, ctx.params.id)
      const page = await ctx.services.queue.logs(t.id, { ...q, tenantId: ctx.key.tenantId })
      return {
        status: 200,
        body: {
          task_id: t.id,
          lines: page.lines.map((l) => ({
            line: l.line,
            at: l.at.toISOString(),
            seq: l.seq,
            attempt_token: l.token,
          })),
          total: page.total,
          offset: page.offset,
        },
      }
    },
  },
  {
    method: 'POST',
    path: '/tasks/:id/cancel',
    scope: 'task:cancel',
    tag: 'tasks',
    summary: 'Cancel a pending or queued task (a processing one answers 409)',
    responses: { 200: CancelResponse },
    problems: [404, 409],
    async handle(ctx) {
      const t = await ownTask(ctx, ctx.params.id)
      const cancelled = await ctx.services.queue.cancel(t.id)
      ctx.audit('task.cancel', t.id, { name: t.name })
      return { status: 200, body: { task_id: cancelled.id, status: 'cancelled' } }
    },
  },
  {
    method: 'GET',
    path: '/quota',
    scope: 'tenant',
    tag: 'tasks',
    summary:
      "The tenant's monthly submissions against its quota and its rate limit (all its keys together), and the calling key's own sub-limits; any of the tenant's keys may read it",
    responses: { 200: Quota },
    async handle(ctx) {
      return { status: 200, body: await quotaReport(ctx) }
    },
  },
  ...scheduleRoutes,
]

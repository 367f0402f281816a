/**
 * Cron schedules, per tenant. A tenant's schedule ids are its own: stored as `<tenant>:<id>` in the
 * schedules service, so two tenants can both have a 'nightly'.
 */

import type { z } from 'zod'
import { TaskloomError } from '../errors.js'
import type { TaskDefinition } from '../task/define-task.js'
import type { SchedulesLike } from './options.js'
import { scheduleBody } from './present.js'
import { HttpProblem } from './problem.js'
import type { Route, RouteContext } from './route.js'
import { CreateScheduleBody, SCHEDULE_KEY, Schedule, ScheduleList } from './schemas.js'

function schedulesOf(ctx: RouteContext): SchedulesLike {
  const s = ctx.services.options.schedules
  if (!s) {
    throw new HttpProblem(
      'NOT_IMPLEMENTED',
      'this server has no scheduler: pass `schedules` (queue.schedules) to createApi',
    )
  }
  return s
}

const own = (ctx: RouteContext, id: string) => `${ctx.key.tenantId}:${id}`

/** The tenant's schedule `id` as the API shows it, or null (also for another tenant's). */
export async function findSchedule(ctx: RouteContext, id: string) {
  if (!SCHEDULE_KEY.test(id)) return null
  const found = await schedulesOf(ctx).get(own(ctx, id))
  return found && found.tenantId === ctx.key.tenantId ? present(ctx, found) : null
}

function present(ctx: RouteContext, s: Parameters<typeof scheduleBody>[0]) {
  const prefix = `${ctx.key.tenantId}:`
  return scheduleBody({ ...s, id: s.id.startsWith(prefix) ? s.id.slice(prefix.length) : s.id })
}

/**
 * Stores a schedule of the tenant's: replacing one of the same id, or with `createOnly` answering
 * it unchanged (`created: false`). Audited when it writes.
 */
export async function saveSchedule(
  ctx: RouteContext,
  task: TaskDefinition<any, any>,
  body: Omit<z.infer<typeof CreateScheduleBody>, 'name'> & { id: string },
  createOnly = false,
) {
  const schedules = schedulesOf(ctx)
  const options: { priority?: NonNullable<typeof body.priority>; maxRetries?: number; timeoutMs?: number } =
    {}
  if (body.priority !== undefined) options.priority = body.priority
  if (body.max_retries !== undefined) options.maxRetries = body.max_retries
  if (body.timeout !== undefined) options.timeoutMs = Math.max(1, Math.round(body.timeout * 1000))
  const input = {
    id: own(ctx, body.id),
    cron: body.cron,
    task,
    input: body.payload,
    tenantId: ctx.key.tenantId,
    options,
    ...(body.timezone !== undefined ? { timezone: body.timezone } : {}),
    ...(body.misfire !== undefined ? { misfire: body.misfire } : {}),
  }
  try {
    const saved = createOnly
      ? await schedules.create(input)
      : { schedule: await schedules.upsert(input), created: true }
    if (saved.created) ctx.audit('schedule.create', body.id, { name: task.name, cron: body.cron })
    return { schedule: present(ctx, saved.schedule), created: saved.created }
  } catch (err) {
    // A bad cron expression or timezone is the caller's mistake: name the field.
    if (
      err instanceof TaskloomError &&
      ['INVALID_INPUT', 'INVALID_OPTIONS', 'INVALID_CRON'].includes(err.code)
    ) {
      const errors = err.issues.length > 0 ? err.issues : [{ path: 'schedule', message: err.message }]
      throw new HttpProblem('INVALID_INPUT', err.message, { errors })
    }
    throw err
  }
}

/** `POST /schedules/:id/pause` and `/resume`: idempotent, answering the schedule as it now is. */
function pauseRoute(op: 'pause' | 'resume'): Route {
  return {
    method: 'POST',
    path: `/schedules/:id/${op}`,
    scope: 'task:create',
    tag: 'schedules',
    summary:
      op === 'pause'
        ? 'Pause a schedule: it stops firing until resumed'
        : 'Resume a paused schedule: it fires again from its next tick (missed ticks are not made up)',
    responses: { 200: Schedule },
    problems: [404, 501],
    async handle(ctx) {
      const schedules = schedulesOf(ctx)
      const act = schedules[op]
      if (!act) {
        throw new HttpProblem('NOT_IMPLEMENTED', `this server's schedules service cannot ${op} schedules`)
      }
      const id = ctx.params.id ?? ''
      const existing = await findSchedule(ctx, id)
      if (!existing || !(await act.call(schedules, own(ctx, id)))) {
        throw new HttpProblem('NOT_FOUND', `no schedule ${id}`)
      }
      if (existing.paused !== (op === 'pause')) ctx.audit(`schedule.${op}`, id)
      const now = await findSchedule(ctx, id)
      if (!now) throw new HttpProblem('NOT_FOUND', `no schedule ${id}`)
      return { status: 200, body: now }
    },
  }
}

export const scheduleRoutes: Route[] = [
  {
    method: 'POST',
    path: '/schedules',
    scope: 'task:create',
    tag: 'schedules',
    summary: 'Create (or replace) a cron schedule',
    body: CreateScheduleBody,
    responses: { 201: Schedule },
    problems: [400, 415, 501],
    async handle(ctx) {
      const body = ctx.body as z.infer<typeof CreateScheduleBody>
      schedulesOf(ctx)
      const task = await ctx.services.findTask(body.name)
      if (!task) {
        throw new HttpProblem('UNKNOWN_TASK', `no task named ${JSON.stringify(body.name)} is registered`, {
          errors: [{ path: 'name', message: 'unknown task name' }],
        })
      }
      const { name: _name, ...rest } = body
      return {
        status: 201,
        body: (await saveSchedule(ctx, task, { ...rest, id: body.id ?? crypto.randomUUID() })).schedule,
      }
    },
  },
  {
    method: 'GET',
    path: '/schedules',
    scope: 'task:list',
    tag: 'schedules',
    summary: "The tenant's schedules",
    responses: { 200: ScheduleList },
    problems: [501],
    async handle(ctx) {
      const list = await schedulesOf(ctx).list({ tenantId: ctx.key.tenantId, limit: 1000 })
      const mine = list.filter((s) => s.tenantId === ctx.key.tenantId)
      return { status: 200, body: { schedules: mine.map((s) => present(ctx, s)) } }
    },
  },
  {
    method: 'GET',
    path: '/schedules/:id',
    scope: 'task:read',
    tag: 'schedules',
    summary: 'A schedule: its cron, payload, whether it is paused, its next and last run',
    responses: { 200: Schedule },
    problems: [404, 501],
    async handle(ctx) {
      const id = ctx.params.id ?? ''
      const found = await findSchedule(ctx, id)
      if (!found) throw new HttpProblem('NOT_FOUND', `no schedule ${id}`)
      return { status: 200, body: found }
    },
  },
  pauseRoute('pause'),
  pauseRoute('resume'),
  {
    method: 'DELETE',
    path: '/schedules/:id',
    scope: 'task:cancel',
    tag: 'schedules',
    summary: 'Delete a schedule',
    responses: { 204: null },
    problems: [404, 501],
    async handle(ctx) {
      const schedules = schedulesOf(ctx)
      const id = ctx.params.id ?? ''
      const existing = await findSchedule(ctx, id)
      if (!existing || !(await schedules.remove(own(ctx, id)))) {
        throw new HttpProblem('NOT_FOUND', `no schedule ${id}`)
      }
      ctx.audit('schedule.delete', id)
      return { status: 204 }
    },
  },
]

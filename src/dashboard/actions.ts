/**
 * What the dashboard can change, each through the library call the REST API makes for it
 * (`queue.cancel`, `queue.dlq.retry`, `queue.schedules.pause` / `resume`) or `triggerSchedule`,
 * each written to the audit log with who did it. A bulk retry names how many tasks the person
 * confirmed; when that is no longer what the selection holds, nothing happens and the answer says
 * how many it holds now.
 */
import { z } from 'zod'
import { TaskloomError } from '../errors.js'
import type { AuditAction } from '../http/audit.js'
import { HttpProblem } from '../http/problem.js'
import { deadLetterIds } from '../queue/insights.js'
import type { Queue } from '../queue/queue.js'
import { triggerSchedule } from '../schedule/trigger.js'
import type { TaskDefinition } from '../task/define-task.js'
import { queueOf, type ViewContext, visibleTask } from './views.js'

export interface ActionContext extends ViewContext {
  body: unknown
  record(action: AuditAction, queue: Queue, targetId: string | null, details?: Record<string, unknown>): void
  findTask(name: string): TaskDefinition<any, any> | undefined
}

const MAX_BULK = 10_000

function mayAct(ctx: ActionContext): void {
  if (!ctx.viewer.canAct) {
    throw new HttpProblem(
      'FORBIDDEN',
      'read-only access: actions need an admin key (or canAct from the host)',
    )
  }
}

export async function cancelTask(ctx: ActionContext) {
  mayAct(ctx)
  const queue = queueOf(ctx, ctx.params.queue)
  const t = await visibleTask(ctx, queue, ctx.params.id)
  const cancelled = await queue.cancel(t.id)
  ctx.record('task.cancel', queue, t.id, { name: t.name })
  return { task_id: cancelled.id, status: cancelled.status }
}

export async function retryTask(ctx: ActionContext) {
  mayAct(ctx)
  const queue = queueOf(ctx, ctx.params.queue)
  const t = await visibleTask(ctx, queue, ctx.params.id)
  await queue.dlq.retry(t.id)
  ctx.record('task.retry', queue, t.id, { name: t.name })
  return { task_id: t.id, status: 'queued' }
}

const BulkBody = z.strictObject({
  queue: z.string().min(1).max(200),
  /** Chosen tasks, or every dead task of a group (name and error). */
  ids: z.array(z.string().min(1).max(200)).max(MAX_BULK).optional(),
  group: z
    .strictObject({
      name: z.string().max(200).optional(),
      error_name: z.string().max(1000).optional(),
      error_message: z.string().max(10_000).optional(),
    })
    .optional(),
  /** How many tasks the person confirmed. */
  expect: z.number().int().min(0),
})

export async function bulkRetry(ctx: ActionContext) {
  mayAct(ctx)
  const parsed = BulkBody.safeParse(ctx.body)
  if (!parsed.success) throw new HttpProblem('INVALID_INPUT', `invalid request: ${parsed.error.message}`)
  const body = parsed.data
  const queue = queueOf(ctx, body.queue)
  let ids: string[]
  if (body.ids) {
    ids = []
    for (const id of new Set(body.ids)) {
      const t = await visibleTask(ctx, queue, id).catch(() => null)
      if (t?.status === 'failed') ids.push(t.id)
    }
  } else {
    const group = body.group ?? {}
    const found = await deadLetterIds(
      queue,
      {
        tenantId: ctx.viewer.tenantId,
        ...(group.name !== undefined ? { name: group.name } : {}),
        ...(group.error_name !== undefined ? { errorName: group.error_name } : {}),
        ...(group.error_message !== undefined ? { errorMessage: group.error_message } : {}),
      },
      MAX_BULK + 1,
    )
    if (found === null) throw new HttpProblem('NOT_IMPLEMENTED', 'retrying a group needs a store')
    ids = found
  }
  if (ids.length !== body.expect) {
    throw new HttpProblem(
      'CONFLICT',
      `${ids.length} task(s) match now, not the ${body.expect} you confirmed: nothing was retried; confirm again`,
      { errors: [{ path: 'expect', message: String(ids.length) }] },
    )
  }
  let retried = 0
  for (const id of ids.slice(0, MAX_BULK)) {
    try {
      await queue.dlq.retry(id)
      retried += 1
    } catch (err) {
      if (!(err instanceof TaskloomError && err.code === 'NOT_IN_DLQ')) throw err
    }
  }
  ctx.record('tasks.retry_all', queue, null, {
    retried,
    ...(body.ids ? { ids: body.ids.length } : { group: body.group ?? {} }),
  })
  return { retried }
}

async function visibleSchedule(ctx: ActionContext, queue: Queue, id: string | undefined) {
  const found = id ? await queue.schedules.get(id) : null
  if (!found || (ctx.viewer.tenantId !== undefined && found.tenantId !== ctx.viewer.tenantId)) {
    throw new HttpProblem('NOT_FOUND', `no schedule ${id ?? ''}`)
  }
  return found
}

export async function scheduleAction(ctx: ActionContext, op: 'pause' | 'resume' | 'trigger') {
  mayAct(ctx)
  const queue = queueOf(ctx, ctx.params.queue)
  const s = await visibleSchedule(ctx, queue, ctx.params.id)
  if (op === 'trigger') {
    const submitted = await triggerSchedule(
      queue,
      s.id,
      async (name) => ctx.findTask(name) ?? (await queue.definitions.resolve(name)),
    )
    ctx.record('schedule.trigger', queue, s.id, { task_id: submitted.id })
    return { schedule_id: s.id, task_id: submitted.id }
  }
  if (!(await queue.schedules[op](s.id))) throw new HttpProblem('NOT_FOUND', `no schedule ${s.id}`)
  if (s.paused !== (op === 'pause')) ctx.record(`schedule.${op}`, queue, s.id)
  return { schedule_id: s.id, paused: op === 'pause' }
}

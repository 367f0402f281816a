/**
 * What each dashboard page reads, as JSON for the page. Every number and row comes from the same
 * library calls the REST API makes (`queue.get`, `queue.list`, `queue.schedules`, `queue.workers`,
 * the key store's tenants, the audit log) or from the queue summaries in src/queue/insights.ts;
 * rows are shaped by the REST API's presenters (src/http/present.ts), plus what only the dashboard
 * shows. A tenant's viewer gets only that tenant's rows.
 */
import { TaskloomError } from '../errors.js'
import type { AuditLog } from '../http/audit.js'
import { quotaPeriod } from '../http/limits.js'
import { scheduleBody, taskBody, workerBody } from '../http/present.js'
import { HttpProblem } from '../http/problem.js'
import { grantOf } from '../http/tenants.js'
import {
  deadLetterGroups,
  findByIdempotencyKey,
  queueActivity,
  queueMode,
  queueSnapshot,
  queueStatusCounts,
} from '../queue/insights.js'
import type { Queue } from '../queue/queue.js'
import type { TaskInfo } from '../queue/task-info.js'
import { nextTick } from '../schedule/cron.js'
import { tickKey } from '../schedule/tick-key.js'
import { TASK_STATUSES, type TaskStatus } from '../task/model.js'
import { display, type Redactor } from './redact.js'
import type { Sessions, Viewer } from './session.js'

export interface ViewContext {
  viewer: Viewer
  queues: ReadonlyMap<string, Queue>
  query: URLSearchParams
  params: Record<string, string>
  redact: Redactor
  sessions: Sessions
  audit: () => Promise<AuditLog | undefined>
}

const ID = /^[A-Za-z0-9._:-]{1,200}$/
/** Lists count matches up to this many ("10,000+"), so a page over millions stays fast. */
const COUNT_LIMIT = 10_000

export function queueOf(ctx: ViewContext, name: string | null | undefined): Queue {
  const queue = name ? ctx.queues.get(name) : ctx.queues.values().next().value
  if (!queue) throw new HttpProblem('NOT_FOUND', `no queue ${name ?? ''}`)
  return queue
}

/** A task the viewer may see, or 404 (another tenant's task is 404 too, as on the REST API). */
export async function visibleTask(ctx: ViewContext, queue: Queue, id: string | undefined): Promise<TaskInfo> {
  const task = id !== undefined && ID.test(id) ? await queue.get(id) : null
  if (!task || (ctx.viewer.tenantId !== undefined && task.tenantId !== ctx.viewer.tenantId)) {
    throw new HttpProblem('NOT_FOUND', `no task ${id}`)
  }
  return task
}

function row(queue: Queue, t: TaskInfo) {
  return { ...taskBody(t), queue: queue.name, tenant_id: t.tenantId }
}

export async function overview(ctx: ViewContext) {
  const tenantId = ctx.viewer.tenantId
  const queues = await Promise.all(
    [...ctx.queues.values()].map(async (queue) => {
      const [snapshot, activity] = await Promise.all([
        queueSnapshot(queue, { tenantId }),
        queueActivity(queue, { tenantId }),
      ])
      return {
        name: queue.name,
        mode: queueMode(queue),
        snapshot,
        oldest_ready_age_ms: snapshot?.oldestReadyAt
          ? Math.max(0, Date.now() - snapshot.oldestReadyAt)
          : null,
        activity,
      }
    }),
  )
  return { now: new Date().toISOString(), tenant_id: tenantId ?? null, queues }
}

function timeParam(ctx: ViewContext, name: string): number | undefined {
  const v = ctx.query.get(name)
  if (!v) return undefined
  const ms = Date.parse(v)
  if (Number.isNaN(ms)) throw new HttpProblem('INVALID_QUERY', `${name} is not a time`)
  return ms
}

export async function tasks(ctx: ViewContext) {
  const queue = queueOf(ctx, ctx.query.get('queue'))
  const q = ctx.query
  const tenantId = ctx.viewer.tenantId ?? (q.get('tenant') || undefined)
  const find = q.get('find')?.trim()
  if (find) {
    // An id first (any queue of the dashboard), then an idempotency key in this queue.
    for (const candidate of ctx.queues.values()) {
      const byId = ID.test(find) ? await candidate.get(find) : null
      if (byId && (ctx.viewer.tenantId === undefined || byId.tenantId === ctx.viewer.tenantId))
        return {
          queue: candidate.name,
          tasks: [row(candidate, byId)],
          total: 1,
          next_cursor: null,
          found: 'id',
        }
    }
    const byKey = await findByIdempotencyKey(queue, find, tenantId)
    const found = byKey && (tenantId === undefined || byKey.tenantId === tenantId) ? [row(queue, byKey)] : []
    return { queue: queue.name, tasks: found, total: found.length, next_cursor: null, found: 'key' }
  }
  const status = q.get('status') || undefined
  if (status !== undefined && !TASK_STATUSES.includes(status as TaskStatus)) {
    throw new HttpProblem('INVALID_QUERY', `unknown status ${status}`)
  }
  const limit = Math.min(Math.max(Number(q.get('limit') ?? 50) || 50, 1), 200)
  try {
    const page = await queue.list({
      status: status as TaskStatus | undefined,
      name: q.get('name') || undefined,
      tenantId,
      createdFrom: timeParam(ctx, 'from'),
      createdTo: timeParam(ctx, 'to'),
      cursor: q.get('cursor') || undefined,
      limit,
      countLimit: COUNT_LIMIT,
    })
    return {
      queue: queue.name,
      tasks: page.tasks.map((t) => row(queue, t)),
      total: page.total,
      total_at_least: page.total >= COUNT_LIMIT,
      next_cursor: page.nextCursor ?? null,
    }
  } catch (err) {
    if (err instanceof TaskloomError && err.code === 'INVALID_STATE') {
      return {
        queue: queue.name,
        tasks: [],
        total: 0,
        next_cursor: null,
        unsupported:
          'This queue runs Redis-only: it keeps no record to list or filter. Find a task by its id.',
      }
    }
    if (err instanceof TaskloomError && err.code === 'INVALID_INPUT') {
      throw new HttpProblem('INVALID_QUERY', err.message)
    }
    throw err
  }
}

export async function taskDetail(ctx: ViewContext) {
  const queue = queueOf(ctx, ctx.params.queue)
  const t = await visibleTask(ctx, queue, ctx.params.id)
  return {
    ...row(queue, t),
    attempts: t.attempts,
    timeout_ms: t.timeoutMs,
    worker_id: t.workerId ?? null,
    lock_key: t.lockKey ?? null,
    input: display(ctx.redact, t.input),
    result: t.result === undefined ? null : display(ctx.redact, t.result),
    error_detail: t.error ?? null,
    schedule: t.schedule ? { id: t.schedule.id, scheduled_at: t.schedule.scheduledAt.toISOString() } : null,
    history: t.history.map((h) => ({
      attempt: h.attempt,
      worker_id: h.workerId,
      started_at: new Date(h.startedAt).toISOString(),
      duration_ms: h.endedAt - h.startedAt,
      outcome: h.outcome,
      error: h.error,
    })),
    can_cancel: t.status === 'pending' || t.status === 'queued',
    can_retry: t.status === 'failed',
  }
}

export async function deadLetters(ctx: ViewContext) {
  const queue = queueOf(ctx, ctx.query.get('queue'))
  const tenantId = ctx.viewer.tenantId
  const groups = await deadLetterGroups(queue, { tenantId })
  if (groups === null) {
    // Redis-only: the broker's dead-letter list, every tenant's, so only for an operator.
    if (tenantId !== undefined)
      return { queue: queue.name, groups: null, tasks: [], total: 0, next_cursor: null }
    const offset = Math.max(0, Number(ctx.query.get('cursor') ?? 0) || 0)
    const page = await queue.dlq.list({ limit: 50, offset })
    return {
      queue: queue.name,
      groups: null,
      tasks: page.tasks.map((t) => row(queue, t)),
      total: page.total,
      next_cursor: offset + 50 < page.total ? String(offset + 50) : null,
    }
  }
  const page = await queue.list({
    status: 'failed',
    tenantId,
    name: ctx.query.get('name') || undefined,
    cursor: ctx.query.get('cursor') || undefined,
    limit: 50,
    countLimit: COUNT_LIMIT,
  })
  return {
    queue: queue.name,
    groups: groups.map((g) => ({
      name: g.name,
      error_name: g.errorName,
      error_message: g.errorMessage,
      count: g.count,
      last_at: new Date(g.lastAt).toISOString(),
    })),
    tasks: page.tasks.filter((t) => t.status === 'failed').map((t) => row(queue, t)),
    total: page.total,
    total_at_least: page.total >= COUNT_LIMIT,
    next_cursor: page.nextCursor ?? null,
  }
}

export async function schedules(ctx: ViewContext) {
  const tenantId = ctx.viewer.tenantId
  const out = []
  const unsupported: string[] = []
  for (const queue of ctx.queues.values()) {
    let list: Awaited<ReturnType<Queue['schedules']['list']>>
    try {
      list = await queue.schedules.list({ ...(tenantId !== undefined ? { tenantId } : {}), limit: 1000 })
    } catch (err) {
      if (err instanceof TaskloomError && err.code === 'INVALID_STATE') {
        unsupported.push(queue.name)
        continue
      }
      throw err
    }
    for (const s of list) {
      if (tenantId !== undefined && s.tenantId !== tenantId) continue
      const next: string[] = []
      let after = Date.now()
      for (let i = 0; i < 3 && !s.paused; i++) {
        const tick = nextTick(s.cron, s.timezone, after)
        if (tick === null) break
        next.push(new Date(tick).toISOString())
        after = tick
      }
      const last = s.lastRunAt
        ? await findByIdempotencyKey(queue, tickKey(s.id, s.lastRunAt.getTime()), s.tenantId ?? undefined)
        : null
      out.push({
        ...scheduleBody(s),
        payload: display(ctx.redact, s.input ?? null),
        queue: queue.name,
        tenant_id: s.tenantId,
        next_runs: next,
        last_run: last ? { task_id: last.id, status: last.status } : null,
      })
    }
  }
  return { schedules: out, unsupported }
}

export async function workers(ctx: ViewContext) {
  if (ctx.viewer.tenantId !== undefined) {
    return { workers: null, reason: 'Workers are shared by every tenant: only the operator sees the fleet.' }
  }
  const out = []
  for (const queue of ctx.queues.values()) {
    for (const w of await queue.workers()) {
      out.push({
        ...workerBody(w),
        queue: queue.name,
        utilisation: w.concurrency > 0 ? Math.min(1, w.tasksInHand / w.concurrency) : 0,
      })
    }
  }
  return { workers: out }
}

export async function tenants(ctx: ViewContext) {
  const api = ctx.sessions.api
  const audit = await ctx.audit()
  const { startsAt, period } = quotaPeriod()
  const dayAgo = new Date(Date.now() - 86_400_000)
  let list: { tenantId: string; rateLimit: number | null; monthlyQuota: number | null }[]
  if (api) {
    const all = (await (await api.keys()).tenants.list()).map((s) => grantOf(s, api.options))
    list = all.filter((t) => ctx.viewer.tenantId === undefined || t.tenantId === ctx.viewer.tenantId)
    if (ctx.viewer.tenantId !== undefined && list.length === 0) {
      list = [grantOf(await (await api.keys()).tenants.get(ctx.viewer.tenantId), api.options)]
    }
  } else {
    list = ctx.viewer.tenantId ? [{ tenantId: ctx.viewer.tenantId, rateLimit: null, monthlyQuota: null }] : []
  }
  const rows = await Promise.all(
    list.slice(0, 200).map(async (t) => {
      const counts: Record<string, number> = {}
      for (const queue of ctx.queues.values()) {
        for (const c of (await queueStatusCounts(queue, { tenantId: t.tenantId })) ?? [])
          counts[c.status] = (counts[c.status] ?? 0) + c.count
      }
      const [used, limited] = audit
        ? await Promise.all([
            audit.submissions(t.tenantId, startsAt),
            audit.list({ tenantId: t.tenantId, action: 'rate.limited', since: dayAgo, limit: 1000 }),
          ])
        : [null, null]
      return {
        tenant_id: t.tenantId,
        rate_limit: t.rateLimit,
        monthly_quota: t.monthlyQuota,
        period,
        submitted_this_period: used,
        rate_limited_24h: limited ? limited.length : null,
        tasks: counts,
      }
    }),
  )
  return {
    tenants: rows,
    note: api
      ? null
      : 'Tenants and their quotas live with the REST API: sign in with API keys (auth: { apiKeys: api }) to see them.',
  }
}

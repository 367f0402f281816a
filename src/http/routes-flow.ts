/**
 * Flow control over HTTP (src/flow): the operator pauses and resumes the queue, a task name or any
 * group and reads the whole state; a tenant admin pauses and resumes its own tenant's group and
 * reads only that group's state (promise 6: nothing of another tenant).
 */
import { z } from 'zod'
import type { FlowState } from '../broker/broker.js'
import type { PauseTarget } from '../flow/admin.js'
import { GROUP } from '../task/validate.js'
import type { Route, RouteContext } from './route.js'

const timestamp = z.iso.datetime({ offset: true })

const PauseBody = z
  .strictObject({
    task: z.string().min(1).max(200).optional().meta({ description: 'Only this task name' }),
    group: GROUP.optional().meta({ description: 'Only this group (a tenant, unless tasks name another)' }),
  })
  .meta({ id: 'FlowPauseBody' })

const GroupState = z.object({
  group: z.string(),
  ready: z.number().int(),
  running: z.number().int(),
  blocked: z.enum(['paused', 'throttled', 'capped', 'rate-limited']).optional(),
})

const Waiting = z.object({ kind: z.enum(['queue', 'task', 'group']), name: z.string(), until: timestamp })

export const FlowStatus = z
  .object({
    lanes: z.boolean().meta({ description: 'Whether the queue keeps a ready lane per group' }),
    paused: z.object({ queue: z.boolean(), tasks: z.array(z.string()), groups: z.array(z.string()) }),
    waiting: z.array(Waiting).meta({ description: 'Throttled or rate-limited scopes, until when' }),
    groups: z.array(GroupState).meta({ description: 'Groups with ready or running tasks (lanes only)' }),
  })
  .meta({ id: 'FlowStatus' })

const TenantFlowStatus = z
  .object({
    group: z.string(),
    paused: z.boolean(),
    waiting_until: timestamp.nullable(),
    ready: z.number().int().nullable().meta({ description: 'Null unless the queue keeps lanes' }),
    running: z.number().int().nullable(),
  })
  .meta({ id: 'TenantFlowStatus' })

function present(state: FlowState): z.infer<typeof FlowStatus> {
  return {
    lanes: state.lanes,
    paused: state.paused,
    waiting: state.waiting.map((w) => ({ ...w, until: new Date(w.until).toISOString() })),
    groups: state.groups,
  }
}

async function operatorToggle(ctx: RouteContext, paused: boolean) {
  const body = ctx.body as z.infer<typeof PauseBody>
  const target: PauseTarget = { task: body.task, group: body.group }
  const { queue } = ctx.services
  await (paused ? queue.pause(target) : queue.resume(target))
  ctx.audit(paused ? 'flow.pause' : 'flow.resume', null, { ...target })
  return { status: 200, body: present((await queue.counts({ flow: true })).flow!) }
}

/** The tenant's own group only. */
async function tenantStatus(ctx: RouteContext) {
  const group = ctx.key.tenantId
  const state = (await ctx.services.queue.counts({ flow: true })).flow!
  const mine = state.groups.find((g) => g.group === group)
  const wait = state.waiting.find((w) => w.kind === 'group' && w.name === group)
  return {
    status: 200,
    body: {
      group,
      paused: state.paused.groups.includes(group),
      waiting_until: wait ? new Date(wait.until).toISOString() : null,
      ready: state.lanes ? (mine?.ready ?? 0) : null,
      running: state.lanes ? (mine?.running ?? 0) : null,
    },
  }
}

export const flowRoutes: Route[] = [
  {
    method: 'GET',
    path: '/operator/flow',
    scope: 'operator',
    tag: 'operator',
    summary: 'Flow control: pauses, throttled and rate-limited scopes, ready and running tasks per group',
    responses: { 200: FlowStatus },
    async handle(ctx) {
      return { status: 200, body: present((await ctx.services.queue.counts({ flow: true })).flow!) }
    },
  },
  {
    method: 'POST',
    path: '/operator/flow/pause',
    scope: 'operator',
    tag: 'operator',
    summary: 'Pause the queue (empty body), one task name or one group, fleet-wide: running tasks finish',
    body: PauseBody,
    responses: { 200: FlowStatus },
    problems: [400, 415],
    handle: (ctx) => operatorToggle(ctx, true),
  },
  {
    method: 'POST',
    path: '/operator/flow/resume',
    scope: 'operator',
    tag: 'operator',
    summary: 'Resume what /operator/flow/pause paused (the same body)',
    body: PauseBody,
    responses: { 200: FlowStatus },
    problems: [400, 415],
    handle: (ctx) => operatorToggle(ctx, false),
  },
  {
    method: 'GET',
    path: '/admin/flow',
    scope: 'admin',
    tag: 'admin',
    summary: "Flow control of the tenant's own group: paused, throttled until, ready and running",
    responses: { 200: TenantFlowStatus },
    handle: tenantStatus,
  },
  {
    method: 'POST',
    path: '/admin/flow/pause',
    scope: 'admin',
    tag: 'admin',
    summary: "Pause the tenant's own group fleet-wide (tasks submitted under another group are not affected)",
    responses: { 200: TenantFlowStatus },
    async handle(ctx) {
      await ctx.services.queue.pause({ group: ctx.key.tenantId })
      ctx.audit('flow.pause', null, { group: ctx.key.tenantId })
      return tenantStatus(ctx)
    },
  },
  {
    method: 'POST',
    path: '/admin/flow/resume',
    scope: 'admin',
    tag: 'admin',
    summary: "Resume the tenant's own group",
    responses: { 200: TenantFlowStatus },
    async handle(ctx) {
      await ctx.services.queue.resume({ group: ctx.key.tenantId })
      ctx.audit('flow.resume', null, { group: ctx.key.tenantId })
      return tenantStatus(ctx)
    },
  },
]

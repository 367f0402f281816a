/**
 * Flows over HTTP (issue 17; see docs/workflows.md): `POST /flows` submits a tree or a DAG of
 * tasks named by their registered names, all at once, for the key's tenant; `GET /flows/{id}`
 * answers its graph with each node's status. Another tenant's flow is 404, like its tasks.
 */
import { z } from 'zod'
import { TaskloomError } from '../errors.js'
import type { FlowChild, FlowNode, FlowSpec } from '../queue/flows.js'
import { FAILURE_POLICIES } from '../task/dependency-options.js'
import { TASK_STATUSES } from '../task/model.js'
import { HttpProblem } from './problem.js'
import type { Route, RouteContext } from './route.js'
import { findTask, ID } from './routes-tasks.js'
import { quotaExceeded } from './tenant-limits.js'

const taskName = z
  .string()
  .min(1)
  .max(200)
  .meta({ description: 'A registered task name', example: 'send-email' })
const input = z.unknown().optional().meta({ description: "The task's input, validated by its schema" })
const onFailure = z.enum(FAILURE_POLICIES)

interface TreeNode {
  task: string
  input?: unknown
  key?: string | undefined
  onFailure?: (typeof FAILURE_POLICIES)[number] | undefined
  children?: TreeNode[] | undefined
}

const FlowTreeNode: z.ZodType<TreeNode> = z
  .strictObject({
    task: taskName,
    input,
    key: z
      .string()
      .min(1)
      .max(200)
      .optional()
      .meta({ description: "Default: its path ('root', 'root.0', …)" }),
    onFailure: onFailure
      .optional()
      .meta({ description: "What the parent does when this child fails (default 'fail')" }),
    get children() {
      return z.array(FlowTreeNode).optional().meta({ description: 'Tasks that run before this one' })
    },
  })
  .meta({ id: 'FlowTreeNode' })

const FlowDagNode = z.strictObject({
  key: z.string().min(1).max(200),
  task: taskName,
  input,
  dependsOn: z
    .array(z.union([z.string(), z.strictObject({ key: z.string(), onFailure: onFailure.optional() })]))
    .optional()
    .meta({ description: "Keys of the nodes it runs after (with an optional onFailure, default 'fail')" }),
})

export const SubmitFlowBody = z
  .union([FlowTreeNode, z.strictObject({ nodes: z.array(FlowDagNode).min(1) })])
  .meta({ id: 'SubmitFlowRequest', description: 'A tree (the root runs last) or a DAG' })

export const SubmitFlowResponse = z
  .object({
    flow_id: z.string(),
    root_id: z.string().nullable().meta({ description: "The root task's id (a tree); null for a DAG" }),
    ids: z.record(z.string(), z.string()).meta({ description: 'Task ids by node key' }),
  })
  .meta({ id: 'SubmitFlowResponse' })

export const FlowGraph = z
  .object({
    flow_id: z.string(),
    root_id: z.string().nullable(),
    created_at: z.iso.datetime({ offset: true }),
    status: z.enum(['running', 'completed', 'failed']),
    nodes: z.array(
      z.object({
        key: z.string(),
        task_id: z.string(),
        name: z.string(),
        status: z.enum([...TASK_STATUSES, 'unknown']),
        depends_on: z.array(z.string()).meta({ description: 'Keys of its dependencies' }),
        waiting_for: z.array(z.string()).meta({ description: 'The dependencies it still waits for (keys)' }),
      }),
    ),
  })
  .meta({ id: 'FlowGraph' })

type Body = z.infer<typeof SubmitFlowBody>

/** The request's flow with every task name resolved (UNKNOWN_TASK names the node's path). */
async function resolve(ctx: RouteContext, body: Body): Promise<FlowSpec> {
  const names = new Map<string, Awaited<ReturnType<typeof findTask>>>()
  const lookup = async (name: string, path: string) => {
    let task = names.get(name)
    if (!task) {
      task = await findTask(ctx, name, path)
      names.set(name, task)
    }
    return task
  }
  if ('nodes' in body) {
    const nodes: FlowNode[] = []
    for (const [i, n] of body.nodes.entries()) {
      nodes.push({
        key: n.key,
        task: await lookup(n.task, `nodes[${i}].task`),
        input: n.input,
        dependsOn: n.dependsOn,
      })
    }
    return { nodes }
  }
  const tree = async (n: TreeNode, path: string): Promise<FlowChild> => {
    const children: FlowChild[] = []
    for (const [i, c] of (n.children ?? []).entries()) children.push(await tree(c, `${path}children[${i}].`))
    return {
      task: await lookup(n.task, `${path}task`),
      input: n.input,
      ...(n.key !== undefined && { key: n.key }),
      ...(n.onFailure !== undefined && { onFailure: n.onFailure }),
      children,
    }
  }
  return tree(body, '')
}

async function submitFlow(ctx: RouteContext) {
  const spec = await resolve(ctx, ctx.body as Body)
  const header = ctx.headers['idempotency-key']
  const idempotencyKey = Array.isArray(header) ? header[0] : header
  const exceeded = quotaExceeded(ctx)
  if (exceeded) throw exceeded
  let result: Awaited<ReturnType<typeof ctx.services.queue.flow>>
  try {
    result = await ctx.services.queue.flow(spec, {
      tenantId: ctx.key.tenantId,
      ...(idempotencyKey !== undefined && { idempotencyKey }),
    })
  } catch (err) {
    if (err instanceof TaskloomError && (err.code === 'INVALID_INPUT' || err.code === 'INVALID_OPTIONS')) {
      throw new HttpProblem('INVALID_INPUT', err.message, { errors: [...err.issues] })
    }
    if (err instanceof TaskloomError && err.code === 'NOT_FOUND')
      throw new HttpProblem('NOT_FOUND', err.message)
    throw err
  }
  if (!result.deduplicated) {
    ctx.quota?.keep()
    ctx.audit('task.submit', result.flowId, { flow: true, tasks: Object.keys(result.ids).length })
  }
  const out = { flow_id: result.flowId, root_id: result.rootId ?? null, ids: result.ids }
  return result.deduplicated
    ? { status: 200, body: out, headers: { 'idempotent-replayed': 'true' } }
    : { status: 201, body: out }
}

export const workflowRoutes: Route[] = [
  {
    method: 'POST',
    path: '/flows',
    scope: 'task:create',
    tag: 'tasks',
    summary:
      'Submit a flow (a tree or a DAG of tasks) at once; an Idempotency-Key header covers the whole flow',
    body: SubmitFlowBody,
    responses: { 200: SubmitFlowResponse, 201: SubmitFlowResponse },
    problems: [400, 404, 413, 415, 429],
    countsQuota: true,
    handle: submitFlow,
  },
  {
    method: 'GET',
    path: '/flows/:id',
    scope: 'task:read',
    tag: 'tasks',
    summary: "A flow's graph: every node with its status, dependencies and what it still waits for",
    responses: { 200: FlowGraph },
    problems: [404],
    async handle(ctx) {
      const id = ctx.params.id
      const flow =
        id !== undefined && ID.test(id)
          ? await ctx.services.queue.flowStatus(id, { tenantId: ctx.key.tenantId })
          : null
      if (!flow) throw new HttpProblem('NOT_FOUND', `no flow ${id}`)
      return {
        status: 200,
        body: {
          flow_id: flow.flowId,
          root_id: flow.rootId ?? null,
          created_at: flow.createdAt.toISOString(),
          status: flow.status,
          nodes: flow.nodes.map((n) => ({
            key: n.key,
            task_id: n.id,
            name: n.name,
            status: n.status,
            depends_on: n.dependsOn,
            waiting_for: n.waitingFor,
          })),
        },
      }
    },
  },
]

/**
 * The queue's dependency and flow calls (issue 17; see docs/workflows.md): `submit` with
 * `dependsOn`, `flow`, `chain` and `flowStatus`. In durable mode every task of a flow, its edges
 * and the flow record are written to PostgreSQL in one transaction before the broker sees them;
 * otherwise one broker call adds them all or none.
 */
import type { Broker, EnqueueResult, NewTask, TaskRecord } from '../broker/broker.js'
import { TaskloomError } from '../errors.js'
import { dependencyEdges, getFlow, insertFlow } from '../store/postgres/flow-rows.js'
import type { PostgresStore } from '../store/postgres/postgres-store.js'
import type { TaskDefinition } from '../task/define-task.js'
import type { DependencyEdge, DependentRef, FlowKey, FlowRecord } from '../task/dependency-model.js'
import type { DependencyRef } from '../task/dependency-options.js'
import type { TaskStatus } from '../task/model.js'
import { KEY, type SubmitOptions, TENANT_ID } from '../task/validate.js'
import { orTimeout } from '../util/or-timeout.js'
import { uuidV7 } from '../util/uuid-v7.js'
import {
  type FlowChild,
  type FlowLimits,
  type FlowSpec,
  type FlowTaskOptions,
  planFlow,
} from './flow-graph.js'

export type { FlowChild, FlowDag, FlowNode, FlowSpec, FlowTaskOptions, FlowTree } from './flow-graph.js'

export interface FlowOptions {
  /** Owner of every task of the flow. Default: the queue's `defaultTenantId`. */
  tenantId?: string
  /** At most one flow per (tenant, key) within the queue's idempotency retention; a repeat answers the first. */
  idempotencyKey?: string
}

export interface FlowResult {
  /** The flow's id: the root's task id for a tree or a chain, a new id for a DAG. */
  flowId: string
  /** The task that runs last (tree and chain flows). */
  rootId?: string | undefined
  /** Task ids by node key. */
  ids: Record<string, string>
  /** True when the idempotency key matched an earlier flow (whose ids these are). */
  deduplicated: boolean
}

/** One step of `chain`: each runs after the one before it. */
export interface ChainStep<In = any, Out = any> {
  task: TaskDefinition<In, Out, any>
  input: In
  options?: FlowTaskOptions
}

export interface FlowNodeStatus {
  key: string
  id: string
  name: string
  status: TaskStatus | 'unknown'
  /** Keys of the nodes it depends on. */
  dependsOn: string[]
  /** The dependencies it still waits for (keys), while pending. */
  waitingFor: string[]
}

export interface FlowStatus {
  flowId: string
  tenantId: string
  rootId?: string | undefined
  createdAt: Date
  /** 'completed' once every node completed; 'failed' once every node is final and one is not completed; else 'running'. */
  status: 'running' | 'completed' | 'failed'
  nodes: FlowNodeStatus[]
}

/** What the queue lends the flow calls. */
export interface FlowHost {
  name: string
  broker: Broker
  store(): PostgresStore | undefined
  limits: FlowLimits
  defaultTenantId: string
  idempotencyTtlMs: number
  prepare(
    task: TaskDefinition<any, any, any>,
    input: unknown,
    options: unknown,
    inputPath: string,
    optionsPath: string,
  ): NewTask
  fromStore<T>(call: () => Promise<T>): Promise<T>
}

/** How long a durable flow waits for the broker after its rows are stored; reconciliation does the rest. */
const BROKER_HANDOFF_MS = 5000

/** `submit(task, input, { dependsOn })`: one task that waits for others. */
export async function submitDependent(
  host: FlowHost,
  row: NewTask,
  refs: readonly DependencyRef[],
): Promise<EnqueueResult> {
  const dependsOn = refs.map(
    (r): DependencyEdge =>
      typeof r === 'string'
        ? { id: r, queue: host.name, onFailure: 'fail' }
        : { id: r.id, queue: r.queue ?? host.name, onFailure: r.onFailure ?? 'fail' },
  )
  const [result] = (await write(host, [{ ...row, dependsOn }])).results
  return result!
}

/** `queue.flow`: plans (INVALID_INPUT before anything is stored), then writes every node at once. */
export async function submitFlow(
  host: FlowHost,
  spec: FlowSpec,
  options: FlowOptions = {},
): Promise<FlowResult> {
  const tenantId = flowTenant(host, options)
  const plan = planFlow(spec, host.limits)
  const ids = new Map<string, string>()
  const rows = plan.nodes.map((node) => {
    const row = host.prepare(
      node.task,
      node.input,
      { ...node.options, tenantId },
      `${node.path}.input`,
      `${node.path}.options`,
    )
    ids.set(node.key, row.id)
    const dependsOn = node.dependsOn.map((d) => ({
      id: ids.get(d.key)!,
      queue: host.name,
      onFailure: d.onFailure,
    }))
    return dependsOn.length > 0 ? { ...row, dependsOn } : row
  })
  const rootId = plan.rootKey === undefined ? undefined : ids.get(plan.rootKey)
  const record: FlowRecord = {
    id: rootId ?? uuidV7(),
    tenantId,
    nodes: Object.fromEntries(ids),
    rootId,
    createdAt: rows[0]!.createdAt,
  }
  const key: FlowKey | undefined =
    options.idempotencyKey === undefined
      ? undefined
      : { key: options.idempotencyKey, ttlMs: host.idempotencyTtlMs }
  const written = await write(host, rows, { record, key })
  const flow = written.flow ?? record
  return { flowId: flow.id, rootId: flow.rootId, ids: { ...flow.nodes }, deduplicated: written.deduplicated }
}

/** `queue.chain([a, b, c])`: a tree flow in a line (keys '0', '1', …); the last step is the root. */
export function submitChain(
  host: FlowHost,
  steps: readonly ChainStep[],
  options: FlowOptions = {},
): Promise<FlowResult> {
  if (!Array.isArray(steps) || steps.length === 0) {
    throw new TaskloomError('INVALID_INPUT', 'invalid flow: chain needs at least one step', {
      issues: [{ path: '(root)', message: 'expected a non-empty array' }],
    })
  }
  let tree: FlowChild | undefined
  steps.forEach((step, i) => {
    tree = {
      key: String(i),
      task: step.task,
      input: step.input,
      options: step.options,
      children: tree ? [tree] : [],
    }
  })
  return submitFlow(host, tree!, options)
}

function flowTenant(host: FlowHost, options: FlowOptions): string {
  const tenant = options.tenantId ?? host.defaultTenantId
  const bad =
    !TENANT_ID.safeParse(tenant).success ||
    (options.idempotencyKey !== undefined && !KEY.safeParse(options.idempotencyKey).success)
  if (bad) {
    throw new TaskloomError('INVALID_OPTIONS', 'invalid flow options: tenantId or idempotencyKey', {
      issues: [{ path: 'options', message: 'invalid tenantId or idempotencyKey' }],
    })
  }
  return tenant
}

interface Written {
  results: EnqueueResult[]
  deduplicated: boolean
  flow?: FlowRecord | undefined
}

/** Durable: dependencies checked, then store (the acknowledgement), then broker. Else the broker alone. */
async function write(
  host: FlowHost,
  rows: NewTask[],
  flow?: { record: FlowRecord; key?: FlowKey | undefined },
): Promise<Written> {
  const store = host.store()
  if (!store) return host.broker.enqueueFlow(rows, Date.now(), flow)
  const tasks = await withKnownStatus(host, store, rows)
  const stored = await host.fromStore(() => insertFlow(store, tasks, flow))
  if (stored.deduplicated) return { results: [], deduplicated: true, flow: stored.flow }
  const fresh = tasks.filter((t, i) => stored.results[i]!.id === t.id && !stored.results[i]!.deduplicated)
  if (fresh.length > 0) {
    // The store judged the keys; the broker keeps them only to show them (a TTL of 0 maps nothing).
    const handOff = host.broker.enqueueFlow(
      fresh.map((t) => ({ ...t, idempotencyTtlMs: 0 })),
      Date.now(),
      flow && { record: flow.record },
    )
    await orTimeout(
      handOff.catch(() => {}),
      BROKER_HANDOFF_MS,
    )
  }
  return {
    results: stored.results.map(({ confirmed: _c, ...r }) => r),
    deduplicated: false,
    flow: flow?.record,
  }
}

/**
 * Durable mode checks each dependency outside the batch before storing anything: held by the broker
 * or, for this queue, in the store (same tenant, else NOT_FOUND). One the broker no longer holds
 * (finished long ago and expired there) is handed over with the status the store has for it.
 */
async function withKnownStatus(host: FlowHost, store: PostgresStore, rows: NewTask[]): Promise<NewTask[]> {
  const inBatch = new Set(rows.map((r) => `${host.name}|${r.id}`))
  const outside = new Map<string, DependentRef>()
  for (const row of rows)
    for (const d of row.dependsOn ?? []) {
      const ref = `${d.queue}|${d.id}`
      if (!inBatch.has(ref)) outside.set(ref, { id: d.id, queue: d.queue })
    }
  if (outside.size === 0) return rows
  const refs = [...outside.values()]
  const live = await host.broker.getTasks(refs)
  const known = new Map<string, { tenantId: string; status?: TaskStatus }>()
  for (const [i, ref] of refs.entries()) {
    const record = live[i]
    if (record) known.set(`${ref.queue}|${ref.id}`, { tenantId: record.tenantId })
    else if (ref.queue === host.name) {
      const stored = await host.fromStore(() => store.get(ref.id))
      if (stored) known.set(`${ref.queue}|${ref.id}`, { tenantId: stored.tenantId, status: stored.status })
    }
  }
  return rows.map((row) => {
    if (!row.dependsOn) return row
    const dependsOn = row.dependsOn.map((d) => {
      const ref = `${d.queue}|${d.id}`
      if (inBatch.has(ref)) return d
      const found = known.get(ref)
      if (found?.tenantId !== row.tenantId) {
        throw new TaskloomError(
          'NOT_FOUND',
          `dependency ${d.id} of task ${row.name} not found in queue ${d.queue}`,
        )
      }
      return found.status ? { ...d, knownStatus: found.status } : d
    })
    return { ...row, dependsOn }
  })
}

/** `queue.flowStatus`: the flow's nodes with their statuses; null when unknown (or another tenant's). */
export async function flowStatus(host: FlowHost, id: string, tenantId?: string): Promise<FlowStatus | null> {
  const store = host.store()
  const record =
    (await host.broker.getFlow(id)) ?? (store ? await host.fromStore(() => getFlow(store, id)) : null)
  if (!record || (tenantId !== undefined && record.tenantId !== tenantId)) return null
  const keys = Object.keys(record.nodes)
  const ids = keys.map((k) => record.nodes[k]!)
  const live = await host.broker.getTasks(ids.map((i) => ({ id: i, queue: host.name })))
  const missing = ids.filter((_, i) => !live[i])
  const stored = store && missing.length > 0 ? await host.fromStore(() => store.getMany(missing)) : []
  const storedById = new Map(stored.map((s) => [s.id, s]))
  const edges =
    store && missing.length > 0 ? await host.fromStore(() => dependencyEdges(store, missing)) : new Map()
  const keyOf = new Map(keys.map((k) => [record.nodes[k]!, k]))
  const nodes = keys.map((key, i): FlowNodeStatus => {
    const taskId = ids[i]!
    const r: Partial<TaskRecord> | undefined = live[i] ?? storedById.get(taskId)
    const dependsOn = live[i]?.dependsOn ?? (edges.get(taskId) as DependencyEdge[] | undefined) ?? []
    return {
      key,
      id: taskId,
      name: r?.name ?? '',
      status: r?.status ?? 'unknown',
      dependsOn: dependsOn.map((d) => keyOf.get(d.id) ?? d.id),
      waitingFor: (live[i]?.waitingFor ?? []).map((d) => keyOf.get(d.id) ?? d.id),
    }
  })
  const final = nodes.every(
    (n) => n.status === 'completed' || n.status === 'failed' || n.status === 'cancelled',
  )
  const status = nodes.every((n) => n.status === 'completed') ? 'completed' : final ? 'failed' : 'running'
  return {
    flowId: record.id,
    tenantId: record.tenantId,
    rootId: record.rootId,
    createdAt: new Date(record.createdAt),
    status,
    nodes,
  }
}

export type { SubmitOptions }

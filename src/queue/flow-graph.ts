/**
 * The shape of a flow before anything is stored: a tree (`{ task, input, children }`) or a DAG
 * (`{ nodes: [{ key, task, input, dependsOn }] }`) turned into nodes in an order where every
 * dependency comes before its dependents, with unknown references, repeated keys, cycles and
 * the size and depth limits refused as INVALID_INPUT. No I/O.
 */
import { type Issue, TaskloomError } from '../errors.js'
import type { TaskDefinition } from '../task/define-task.js'
import type { FailurePolicy } from '../task/dependency-options.js'
import { FAILURE_POLICIES } from '../task/dependency-options.js'
import type { SubmitOptions } from '../task/validate.js'

/** Per-task options inside a flow: the flow gives the tenant and the dependencies. */
export type FlowTaskOptions = Omit<SubmitOptions, 'dependsOn' | 'schedule' | 'tenantId' | 'idempotencyKey'>

/** A node of a tree flow: it runs after its `children` (their results are its dependencies). */
export interface FlowChild<In = any, Out = any> {
  task: TaskDefinition<In, Out, any>
  input: In
  options?: FlowTaskOptions
  /** The key `flow` names this task's id by. Default: its path, `'root'`, `'root.0'`, `'root.0.1'`… */
  key?: string
  /** What the parent does when this child ends failed or cancelled. Default `'fail'`. */
  onFailure?: FailurePolicy
  children?: FlowChild[]
}

/** A tree flow: the root runs last. */
export type FlowTree = Omit<FlowChild, 'onFailure'>

/** A node of a DAG flow; `dependsOn` names other nodes' keys. */
export interface FlowNode<In = any, Out = any> {
  key: string
  task: TaskDefinition<In, Out, any>
  input: In
  options?: FlowTaskOptions
  dependsOn?: (string | { key: string; onFailure?: FailurePolicy })[]
}

export interface FlowDag {
  nodes: FlowNode[]
}

export type FlowSpec = FlowTree | FlowDag

/** A node with its dependencies resolved to keys, ready to become a task. */
export interface PlannedNode {
  key: string
  task: TaskDefinition<any, any, any>
  input: unknown
  options: FlowTaskOptions | undefined
  dependsOn: { key: string; onFailure: FailurePolicy }[]
  /** Where the caller wrote it (for error paths): `nodes[3]` or `children[0].children[1]`. */
  path: string
}

export interface FlowPlan {
  /** Dependencies first. */
  nodes: PlannedNode[]
  /** The tree's root key; undefined for a DAG. */
  rootKey: string | undefined
}

export interface FlowLimits {
  maxNodes: number
  maxDepth: number
}

const invalid = (message: string, issues: Issue[]) =>
  new TaskloomError('INVALID_INPUT', `invalid flow: ${message}`, { issues })

/** Plans a flow (see the file header); throws INVALID_INPUT before anything is stored. */
export function planFlow(spec: FlowSpec, limits: FlowLimits): FlowPlan {
  if (!spec || typeof spec !== 'object') throw invalid('expected { task, input } or { nodes }', [])
  const tree = !('nodes' in spec)
  const nodes = tree ? flattenTree(spec as FlowTree, limits) : fromDag(spec as FlowDag, limits)
  return { nodes: order(nodes, limits), rootKey: tree ? nodes[0]!.key : undefined }
}

function flattenTree(root: FlowTree, limits: FlowLimits): PlannedNode[] {
  const out: PlannedNode[] = []
  const stack: { node: FlowChild; key: string; path: string; depth: number }[] = [
    { node: root, key: root.key ?? 'root', path: '(root)', depth: 1 },
  ]
  while (stack.length > 0) {
    const { node, key, path, depth } = stack.pop()!
    if (depth > limits.maxDepth) {
      throw invalid(`deeper than ${limits.maxDepth} levels (maxFlowDepth)`, [{ path, message: 'too deep' }])
    }
    if (out.length >= limits.maxNodes) {
      throw invalid(`more than ${limits.maxNodes} tasks (maxFlowNodes)`, [
        { path, message: 'too many tasks' },
      ])
    }
    const children = node.children ?? []
    if (!Array.isArray(children))
      throw invalid(`${path}.children must be an array`, [{ path, message: 'not an array' }])
    const planned: PlannedNode = {
      key,
      task: node.task,
      input: node.input,
      options: node.options,
      dependsOn: [],
      path,
    }
    out.push(planned)
    children.forEach((child, i) => {
      const childKey = child?.key ?? `${key}.${i}`
      const childPath = path === '(root)' ? `children[${i}]` : `${path}.children[${i}]`
      planned.dependsOn.push({ key: childKey, onFailure: policy(child?.onFailure, childPath) })
      stack.push({ node: child, key: childKey, path: childPath, depth: depth + 1 })
    })
  }
  return out
}

function fromDag(dag: FlowDag, limits: FlowLimits): PlannedNode[] {
  if (!Array.isArray(dag.nodes) || dag.nodes.length === 0) {
    throw invalid('nodes must be a non-empty array', [
      { path: 'nodes', message: 'expected a non-empty array' },
    ])
  }
  if (dag.nodes.length > limits.maxNodes) {
    throw invalid(`more than ${limits.maxNodes} tasks (maxFlowNodes)`, [
      { path: 'nodes', message: 'too many tasks' },
    ])
  }
  return dag.nodes.map((node, i) => {
    const path = `nodes[${i}]`
    if (!node || typeof node.key !== 'string' || node.key.length < 1 || node.key.length > 200) {
      throw invalid(`${path}.key must be a string of 1-200 characters`, [
        { path: `${path}.key`, message: 'invalid key' },
      ])
    }
    const deps = node.dependsOn ?? []
    if (!Array.isArray(deps))
      throw invalid(`${path}.dependsOn must be an array`, [{ path, message: 'not an array' }])
    return {
      key: node.key,
      task: node.task,
      input: node.input,
      options: node.options,
      path,
      dependsOn: deps.map((d, j) =>
        typeof d === 'string'
          ? { key: d, onFailure: 'fail' as const }
          : { key: String(d?.key), onFailure: policy(d?.onFailure, `${path}.dependsOn[${j}]`) },
      ),
    }
  })
}

function policy(given: unknown, path: string): FailurePolicy {
  if (given === undefined) return 'fail'
  if ((FAILURE_POLICIES as readonly unknown[]).includes(given)) return given as FailurePolicy
  throw invalid(`${path}.onFailure must be one of ${FAILURE_POLICIES.join(', ')}`, [
    { path: `${path}.onFailure`, message: 'unknown policy' },
  ])
}

/** Kahn's algorithm: dependencies first; a node left over is on a cycle. Checks keys and depth. */
function order(nodes: PlannedNode[], limits: FlowLimits): PlannedNode[] {
  const byKey = new Map<string, PlannedNode>()
  for (const node of nodes) {
    if (byKey.has(node.key)) {
      throw invalid(`key ${JSON.stringify(node.key)} is used twice`, [
        { path: node.path, message: 'duplicate key' },
      ])
    }
    byKey.set(node.key, node)
  }
  const waiting = new Map<PlannedNode, number>()
  const dependents = new Map<string, PlannedNode[]>()
  for (const node of nodes) {
    const seen = new Set<string>()
    for (const d of node.dependsOn) {
      if (!byKey.has(d.key)) {
        throw invalid(`${node.path} depends on unknown key ${JSON.stringify(d.key)}`, [
          { path: `${node.path}.dependsOn`, message: `unknown key ${d.key}` },
        ])
      }
      if (seen.has(d.key)) {
        throw invalid(`${node.path} names ${JSON.stringify(d.key)} twice`, [
          { path: `${node.path}.dependsOn`, message: 'duplicate dependency' },
        ])
      }
      seen.add(d.key)
      const list = dependents.get(d.key) ?? []
      list.push(node)
      dependents.set(d.key, list)
    }
    waiting.set(node, node.dependsOn.length)
  }
  const depth = new Map<string, number>()
  const out = nodes.filter((n) => n.dependsOn.length === 0)
  for (const n of out) depth.set(n.key, 1)
  for (let i = 0; i < out.length; i++) {
    const node = out[i]!
    const level = depth.get(node.key)!
    if (level > limits.maxDepth) {
      throw invalid(`longer than ${limits.maxDepth} tasks on one path (maxFlowDepth)`, [
        { path: node.path, message: 'too deep' },
      ])
    }
    for (const next of dependents.get(node.key) ?? []) {
      depth.set(next.key, Math.max(depth.get(next.key) ?? 0, level + 1))
      const left = waiting.get(next)! - 1
      waiting.set(next, left)
      if (left === 0) out.push(next)
    }
  }
  if (out.length < nodes.length) {
    const cycle = nodes.filter((n) => waiting.get(n)! > 0).map((n) => n.key)
    throw invalid(`a cycle through ${cycle.slice(0, 10).join(', ')}`, [
      { path: 'dependsOn', message: `cycle among ${cycle.slice(0, 10).join(', ')}` },
    ])
  }
  return out
}

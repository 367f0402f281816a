/**
 * The Redis side of task dependencies and flows (see src/task/dependency-model.ts and lua/deps.lua): the
 * arguments of enqueue-flow.lua and its answer, and the reads of a task's dependency sets.
 */
import type { ChainableCommander } from 'ioredis'
import { TaskloomError } from '../../errors.js'
import type {
  DependencyEdge,
  DependencyFields,
  DependentRef,
  FlowKey,
  FlowRecord,
} from '../../task/dependency-model.js'
import { PRIORITIES } from '../../task/model.js'
import type { FlowEnqueueResult, NewTask } from '../broker.js'
import type { RedisClient } from './connection.js'
import { type QueueKeys, queueKeys } from './keys.js'

/** How long a flow's record is kept in Redis at least (its tasks may wait long). */
export const FLOW_RETAIN_MS = 7 * 86_400_000

/** The arguments of enqueue-flow.lua after ARGV[1]. */
export function enqueueFlowArgs(
  keys: QueueKeys,
  tasks: readonly NewTask[],
  now: number,
  retentionMs: number,
  flow?: { record: FlowRecord; key?: FlowKey | undefined },
): (string | number)[] {
  const record = flow?.record
  const key = flow?.key
  const tenant = record?.tenantId ?? ''
  const args: (string | number)[] = [
    now,
    retentionMs,
    record?.id ?? '',
    record ? JSON.stringify(record) : '',
    key ? `${keys.prefix}flowkey:${tenant.length}:${tenant}:${key.key}` : '',
    Math.max(key?.ttlMs ?? 0, FLOW_RETAIN_MS),
    tasks.length,
  ]
  for (const t of tasks) {
    args.push(t.id, t.name, t.tenantId, t.payload, PRIORITIES.indexOf(t.priority), t.runAt, t.timeoutMs)
    args.push(t.maxRetries, t.createdAt, t.idempotencyKey ?? '', t.idempotencyTtlMs, t.attempt ?? 0)
    args.push(t.lockKey ?? '', t.tc ?? '')
    args.push(
      JSON.stringify((t.dependsOn ?? []).map((d) => [d.queue, d.id, d.onFailure, d.knownStatus ?? ''])),
    )
  }
  return args
}

/** enqueue-flow.lua's answer (see its header). */
export function decodeFlowReply(reply: unknown[], tasks: readonly NewTask[]): FlowEnqueueResult {
  const tag = reply[0]
  if (tag === 'flow') return { results: [], deduplicated: true, flow: JSON.parse(String(reply[1])) }
  if (tag === 'missing') {
    const task = tasks[Number(reply[1])]
    throw new TaskloomError(
      'NOT_FOUND',
      `dependency ${String(reply[3])} of task ${task?.name ?? '?'} not found in queue ${String(reply[2])}`,
    )
  }
  const results: FlowEnqueueResult['results'] = []
  for (let i = 1; i < reply.length; i += 4) {
    results.push({
      id: String(reply[i]),
      status: reply[i + 1] as FlowEnqueueResult['results'][number]['status'],
      createdAt: Number(reply[i + 2]),
      deduplicated: reply[i + 3] === '1',
    })
  }
  return { results, deduplicated: false }
}

/** Queues the two set reads of a task's dependency fields (see `dependencyFields`). */
export function readDependencySets(pipeline: ChainableCommander, keys: QueueKeys, id: string): void {
  pipeline.smembers(`${keys.prefix}deps:${id}`).smembers(`${keys.prefix}waits:${id}`)
}

/** The dependency fields of a task from its hash's `dp`/`fl` and its two sets. */
export function dependencyFields(
  hash: Record<string, string>,
  dependents: string[],
  waits: string[],
): DependencyFields {
  if (!hash.dp && dependents.length === 0 && !hash.fl) return {}
  const edges = hash.dp ? (JSON.parse(hash.dp) as [string, string, DependencyEdge['onFailure']][]) : undefined
  return {
    // Unknown (not empty) when the hash lacks them: a task restored from the store keeps them there.
    dependsOn: edges?.map(([queue, id, onFailure]) => ({ id, queue, onFailure })),
    dependents: dependents.map((m) => {
      const [, queue = '', id = ''] = m.split('|')
      return { id, queue }
    }),
    // A released task's set is gone; a waiting one lists what it still waits for.
    waitingFor: hash.dw === '1' ? waits.map(ref) : [],
    flowId: hash.fl || undefined,
  }
}

function ref(member: string): DependentRef {
  const at = member.indexOf('|')
  return { queue: member.slice(0, at), id: member.slice(at + 1) }
}

/** Reads tasks of any queue on this server, one round trip. */
export async function readTasks(
  redis: RedisClient,
  refs: readonly DependentRef[],
): Promise<[Record<string, string>, string[], string[]][]> {
  if (refs.length === 0) return []
  const pipeline = redis.pipeline()
  for (const r of refs) {
    const keys = queueKeys(r.queue)
    pipeline.hgetall(keys.task(r.id))
    readDependencySets(pipeline, keys, r.id)
  }
  const replies = (await pipeline.exec()) ?? []
  const out: [Record<string, string>, string[], string[]][] = []
  for (let i = 0; i < replies.length; i += 3) {
    const [e1, hash] = replies[i]!
    const [e2, deps] = replies[i + 1]!
    const [e3, waits] = replies[i + 2]!
    const err = e1 ?? e2 ?? e3
    if (err) throw err
    out.push([hash as Record<string, string>, deps as string[], waits as string[]])
  }
  return out
}

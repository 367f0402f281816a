/**
 * Summaries of a queue for operators' tools (the dashboard, and anything else that wants them):
 * what the queue holds now, how much finished over time, the dead-letter queue grouped by error,
 * and a task by its idempotency key. Live numbers come from the broker (the whole queue) or, for
 * one tenant, from the store; history needs a store (embedded and durable modes): a Redis-only
 * queue keeps no record of finished tasks to count, and these reads answer `null` for it.
 */
import { TaskloomError } from '../errors.js'
import {
  type ActivityBucket,
  activity,
  byIdempotencyKey,
  type DeadGroup,
  deadGroups,
  deadIds,
  type StatusCount,
  statusCounts,
} from '../store/postgres/insights.js'
import type { PostgresStore } from '../store/postgres/postgres-store.js'
import type { Priority } from '../task/model.js'
import { internals } from './internal.js'
import type { Queue } from './queue.js'
import type { TaskInfo } from './task-info.js'

export type { ActivityBucket, DeadGroup, StatusCount }

/** Embedded: in-process broker and PGlite; durable: Redis and PostgreSQL; redis-only: no store. */
export type QueueMode = 'embedded' | 'durable' | 'redis-only'

export interface QueueSnapshot {
  queue: string
  mode: QueueMode
  /** Whether finished tasks are kept to count and list (a store). */
  history: boolean
  /** Ready tasks per priority; null for one tenant (the broker counts the whole queue). */
  ready: Record<Priority, number> | null
  /** Ready tasks in all (for one tenant: its queued tasks). */
  readyTotal: number
  delayed: number
  processing: number
  dead: number
  /** When the oldest ready task became claimable, epoch ms; null when none waits. */
  oldestReadyAt: number | null
  /** Workers heartbeating and healthy. */
  workersAlive: number
}

export function queueMode(queue: Queue): QueueMode {
  const inner = queue[internals]
  if (!inner.store()) return 'redis-only'
  return inner.redis ? 'durable' : 'embedded'
}

async function storeOf(queue: Queue): Promise<PostgresStore | undefined> {
  await queue.ready()
  return queue[internals].store()
}

/**
 * What the queue holds now. Without `tenantId`, the broker's counts of the whole queue; with one,
 * that tenant's tasks per status from the store (null for a queue without a store: the broker
 * does not count per tenant).
 */
export async function queueSnapshot(
  queue: Queue,
  options: { tenantId?: string | undefined } = {},
): Promise<QueueSnapshot | null> {
  const store = await storeOf(queue)
  const base = { queue: queue.name, mode: queueMode(queue), history: store !== undefined }
  const workers = await queue.workers()
  const workersAlive = workers.filter((w) => w.status !== 'UNHEALTHY').length
  if (options.tenantId === undefined) {
    const counts = await queue.counts({ oldestReady: true })
    const oldest = Object.values(counts.oldestReadyAt ?? {}).filter((v): v is number => v !== null)
    return {
      ...base,
      ready: counts.ready,
      readyTotal: Object.values(counts.ready).reduce((a, b) => a + b, 0),
      delayed: counts.delayed,
      processing: counts.processing,
      dead: counts.dead,
      oldestReadyAt: oldest.length > 0 ? Math.min(...oldest) : null,
      workersAlive,
    }
  }
  if (!store) return null
  const counts = await statusCounts(store, options.tenantId)
  const of = (s: StatusCount['status']) => counts.find((c) => c.status === s)!
  return {
    ...base,
    ready: null,
    readyTotal: of('queued').count,
    delayed: of('pending').count,
    processing: of('processing').count,
    dead: of('failed').count,
    oldestReadyAt: of('queued').oldestAt,
    workersAlive,
  }
}

/** Tasks per status from the store (a tenant's, or all); null without a store. */
export async function queueStatusCounts(
  queue: Queue,
  options: { tenantId?: string | undefined } = {},
): Promise<StatusCount[] | null> {
  const store = await storeOf(queue)
  return store ? statusCounts(store, options.tenantId) : null
}

/**
 * Completed and dead-lettered tasks per bucket over the last `windowMs` (default an hour, in
 * minutes); null without a store (a Redis-only queue keeps no history).
 */
export async function queueActivity(
  queue: Queue,
  options: { tenantId?: string | undefined; windowMs?: number; bucketMs?: number; now?: number } = {},
): Promise<ActivityBucket[] | null> {
  const windowMs = options.windowMs ?? 3_600_000
  const bucketMs = options.bucketMs ?? 60_000
  if (!(windowMs > 0 && bucketMs > 0 && windowMs / bucketMs <= 10_000)) {
    throw new TaskloomError(
      'INVALID_OPTIONS',
      'windowMs and bucketMs must be positive, at most 10,000 buckets',
    )
  }
  const store = await storeOf(queue)
  if (!store) return null
  const until = options.now ?? Date.now()
  const since = Math.floor((until - windowMs) / bucketMs) * bucketMs + bucketMs
  return activity(store, { since, until: until + 1, bucketMs, tenantId: options.tenantId })
}

/** Dead-lettered tasks grouped by task name and last error; null without a store. */
export async function deadLetterGroups(
  queue: Queue,
  options: { tenantId?: string | undefined; limit?: number } = {},
): Promise<DeadGroup[] | null> {
  const store = await storeOf(queue)
  return store ? deadGroups(store, options) : null
}

/** Ids of dead-lettered tasks of one group (see `deadLetterGroups`), newest first; null without a store. */
export async function deadLetterIds(
  queue: Queue,
  filter: { tenantId?: string | undefined; name?: string; errorName?: string; errorMessage?: string },
  limit = 10_000,
): Promise<string[] | null> {
  const store = await storeOf(queue)
  return store ? deadIds(store, filter, limit) : null
}

/**
 * The task submitted with an idempotency key (a tenant's when `tenantId` is given), as `queue.get`
 * shows it; null when none is stored (or the queue has no store).
 */
export async function findByIdempotencyKey(
  queue: Queue,
  key: string,
  tenantId?: string,
): Promise<TaskInfo | null> {
  const store = await storeOf(queue)
  if (!store) return null
  const row = await byIdempotencyKey(store, key, tenantId)
  return row ? queue.get(row.id) : null
}

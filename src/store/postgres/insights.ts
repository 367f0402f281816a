/**
 * Reads over the durable record that summarise a queue rather than list it: tasks per status,
 * finished tasks per time bucket (throughput and failures over time), dead letters grouped by task
 * name and error, and a task by its idempotency key. Each is one statement served by the existing
 * indexes (tasks_status_created, tasks_tenant_status_created, tasks_finished, tasks_idempotency_key).
 */
import { sql } from 'kysely'
import { TASK_STATUSES, type TaskStatus } from '../../task/model.js'
import type { StoredTask } from '../store.js'
import type { PostgresStore } from './postgres-store.js'
import { TASK_COLUMNS, timestamp, toStoredTask } from './task-rows.js'

export interface StatusCount {
  status: TaskStatus
  count: number
  /** The earliest `runAt` of the status's tasks (for `queued`: when the oldest became claimable). */
  oldestAt: number | null
}

export interface ActivityBucket {
  /** Start of the bucket, epoch ms. */
  at: number
  completed: number
  /** Dead-lettered (failed for good). */
  failed: number
}

export interface DeadGroup {
  name: string
  errorName: string
  errorMessage: string
  count: number
  /** When the latest of them was dead-lettered, epoch ms. */
  lastAt: number
}

const tasks = (store: PostgresStore) =>
  store.db.withSchema(store.schema).selectFrom('tasks').where('queue', '=', store.queue)

/** Tasks per status (every status, zero included), with a tenant only its tasks. */
export async function statusCounts(store: PostgresStore, tenantId?: string): Promise<StatusCount[]> {
  let q = tasks(store)
  if (tenantId !== undefined) q = q.where('tenant_id', '=', tenantId)
  const rows = await q
    .select(['status', sql<string>`count(*)`.as('count'), sql<Date | null>`min(scheduled_at)`.as('oldest')])
    .groupBy('status')
    .execute()
  return TASK_STATUSES.map((status) => {
    const row = rows.find((r) => r.status === status)
    return {
      status,
      count: Number(row?.count ?? 0),
      oldestAt: row?.oldest ? new Date(row.oldest).getTime() : null,
    }
  })
}

/**
 * Tasks that finished from `since` on, completed and dead-lettered, per `bucketMs`: every bucket up
 * to `until`, empty ones included, oldest first.
 */
export async function activity(
  store: PostgresStore,
  options: { since: number; until: number; bucketMs: number; tenantId?: string | undefined },
): Promise<ActivityBucket[]> {
  const { since, until, bucketMs } = options
  let q = tasks(store)
    .where('completed_at', 'is not', null)
    .where('completed_at', '>=', timestamp(since))
    .where('status', 'in', ['completed', 'failed'])
  if (options.tenantId !== undefined) q = q.where('tenant_id', '=', options.tenantId)
  const rows = await q
    .select([
      sql<string>`floor((extract(epoch from completed_at) * 1000 - ${since}) / ${bucketMs})`.as('bucket'),
      'status',
      sql<string>`count(*)`.as('count'),
    ])
    .groupBy(['bucket', 'status'])
    .execute()
  const buckets: ActivityBucket[] = []
  for (let at = since; at < until; at += bucketMs) buckets.push({ at, completed: 0, failed: 0 })
  for (const row of rows) {
    const bucket = buckets[Number(row.bucket)]
    if (!bucket) continue
    if (row.status === 'completed') bucket.completed += Number(row.count)
    else bucket.failed += Number(row.count)
  }
  return buckets
}

/** Dead-lettered tasks grouped by task name and last error, largest group first. */
export async function deadGroups(
  store: PostgresStore,
  options: { tenantId?: string | undefined; limit?: number } = {},
): Promise<DeadGroup[]> {
  let q = tasks(store).where('status', '=', 'failed')
  if (options.tenantId !== undefined) q = q.where('tenant_id', '=', options.tenantId)
  const rows = await q
    .select([
      'name',
      sql<string>`coalesce(error->>'name', '')`.as('error_name'),
      sql<string>`coalesce(error->>'message', '')`.as('error_message'),
      sql<string>`count(*)`.as('count'),
      sql<Date>`max(coalesce(dead_lettered_at, completed_at, updated_at))`.as('last_at'),
    ])
    .groupBy(['name', 'error_name', 'error_message'])
    .orderBy('count', 'desc')
    .orderBy('name')
    .limit(options.limit ?? 100)
    .execute()
  return rows.map((r) => ({
    name: r.name,
    errorName: r.error_name,
    errorMessage: r.error_message,
    count: Number(r.count),
    lastAt: new Date(r.last_at).getTime(),
  }))
}

/** Ids of dead-lettered tasks matching a group (name, and the error's name and message when given). */
export async function deadIds(
  store: PostgresStore,
  filter: {
    tenantId?: string | undefined
    name?: string | undefined
    errorName?: string | undefined
    errorMessage?: string | undefined
  },
  limit: number,
): Promise<string[]> {
  let q = tasks(store).where('status', '=', 'failed')
  if (filter.tenantId !== undefined) q = q.where('tenant_id', '=', filter.tenantId)
  if (filter.name !== undefined) q = q.where('name', '=', filter.name)
  if (filter.errorName !== undefined)
    q = q.where(sql<string>`coalesce(error->>'name', '')`, '=', filter.errorName)
  if (filter.errorMessage !== undefined)
    q = q.where(sql<string>`coalesce(error->>'message', '')`, '=', filter.errorMessage)
  const rows = await q.select('id').orderBy('created_at', 'desc').orderBy('id', 'desc').limit(limit).execute()
  return rows.map((r) => r.id)
}

/**
 * The task submitted with this idempotency key (the latest, if the key was reused); with a tenant,
 * that tenant's (an index lookup), without one any tenant's.
 */
export async function byIdempotencyKey(
  store: PostgresStore,
  key: string,
  tenantId?: string,
): Promise<StoredTask | null> {
  let q = tasks(store).where('idempotency_key', '=', key)
  if (tenantId !== undefined) q = q.where('tenant_id', '=', tenantId)
  const row = await q.select(TASK_COLUMNS).orderBy('created_at', 'desc').limit(1).executeTakeFirst()
  return row ? toStoredTask(row) : null
}

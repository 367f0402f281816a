/**
 * Inserting a batch of tasks in one statement (`INSERT ... SELECT` over one JSON document of the
 * rows, see `selectRows`). A batch without idempotency keys goes in as a plain INSERT; one with
 * keys, or one whose plain INSERT hit a duplicate, goes `ON CONFLICT DO NOTHING`, then the rows
 * that conflicted are settled: an id already stored (a retried write), a live idempotency key
 * (answered as deduplicated), or an expired key (released, then the row tries again). Without
 * conflicts, a batch is exactly one statement.
 */
import { type Kysely, sql } from 'kysely'
import { TaskloomError } from '../../errors.js'
import type { TaskStatus } from '../../task/model.js'
import type { InsertResult, NewTaskRow } from '../store.js'
import type { Database } from './tables.js'

/** Rounds of release-and-retry before giving up (only reached under a storm of reuses of one key). */
const MAX_ROUNDS = 5

interface Pending {
  row: NewTaskRow
  index: number
}

interface Existing {
  id: string
  tenant_id: string
  idempotency_key: string | null
  idempotency_expires_at: Date | null
  status: TaskStatus
  created_at: Date
  enqueued_at: Date | null
}

export function initialStatus(row: NewTaskRow): TaskStatus {
  return row.runAt > row.createdAt ? 'pending' : 'queued'
}

export async function insertTasks(
  db: Kysely<Database>,
  schema: string,
  queue: string,
  rows: readonly NewTaskRow[],
): Promise<InsertResult[]> {
  if (rows.every((row) => row.idempotencyKey === undefined) && (await insertPlain(db, schema, queue, rows))) {
    return rows.map(fresh)
  }
  const results: InsertResult[] = new Array(rows.length)
  let pending: Pending[] = rows.map((row, index) => ({ row, index }))
  for (let round = 0; pending.length > 0; round += 1) {
    if (round === MAX_ROUNDS) {
      throw new TaskloomError('INTERNAL', 'could not settle idempotency keys; try again', { retryable: true })
    }
    const inserted = await insertRows(db, schema, queue, pending)
    const conflicted: Pending[] = []
    for (const p of pending) {
      if (!inserted.has(p.row.id)) conflicted.push(p)
      else results[p.index] = fresh(p.row)
    }
    pending = conflicted.length === 0 ? [] : await settle(db, schema, queue, conflicted, results)
  }
  return results
}

function fresh(row: NewTaskRow): InsertResult {
  return { id: row.id, status: initialStatus(row), createdAt: row.createdAt, deduplicated: false }
}

/**
 * The common case, a batch without idempotency keys: a plain INSERT, without ON CONFLICT's
 * speculative insertion (a check of every unique index before each row, then a confirmation), which
 * costs PostgreSQL about a third more per row. A duplicate id (a write retried after its commit was
 * lost) fails the whole statement, nothing inserted; answers false, and the caller settles the batch
 * row by row.
 */
async function insertPlain(db: Kysely<Database>, schema: string, queue: string, rows: readonly NewTaskRow[]) {
  try {
    await sql`insert into ${sql.id(schema, 'tasks')} ${COLUMNS} ${selectRows(queue, rows)}`.execute(db)
    return true
  } catch (err) {
    if ((err as { code?: unknown }).code === UNIQUE_VIOLATION) return false
    throw err
  }
}

const UNIQUE_VIOLATION = '23505'

const COLUMNS = sql`(id, queue, tenant_id, name, payload, priority, status, schedule, scheduled_at, timeout_ms,
  max_retries, idempotency_key, idempotency_expires_at, created_at, updated_at, lock_key)`

async function insertRows(db: Kysely<Database>, schema: string, queue: string, batch: Pending[]) {
  const result = await sql<{ id: string }>`
    insert into ${sql.id(schema, 'tasks')} ${COLUMNS}
    ${selectRows(
      queue,
      batch.map((p) => p.row),
    )}
    order by u.ord
    on conflict do nothing
    returning id`.execute(db)
  return new Set(result.rows.map((row) => row.id))
}

/**
 * The rows as a SELECT over one JSON document (`json_to_recordset`), numbered by `u.ord`: measured
 * here, PostgreSQL reads it for about a fifth less CPU per row than thirteen typed arrays (`unnest`),
 * and Node builds it for about a quarter less than `pg` spends escaping those arrays. `json`, not
 * `jsonb`: a jsonb value is capped at 256 MB, a batch of large payloads is not. The payload travels
 * as a JSON string and is cast, so a payload that is not JSON fails its batch (a data error, retried
 * caller by caller) instead of reshaping the document.
 */
function selectRows(queue: string, rows: readonly NewTaskRow[]) {
  const document = JSON.stringify(
    rows.map((r) => ({
      id: r.id,
      tenant_id: r.tenantId,
      name: r.name,
      payload: r.payload,
      priority: r.priority,
      schedule: r.schedule,
      run_at: r.runAt,
      timeout_ms: r.timeoutMs,
      max_retries: r.maxRetries,
      idempotency_key: r.idempotencyKey,
      ttl_ms: r.idempotencyTtlMs,
      created_at: r.createdAt,
      lock_key: r.lockKey,
    })),
  )
  return sql`
    select u.id, ${queue}::text, u.tenant_id, u.name, u.payload::jsonb, u.priority,
      case when u.run_at > u.created_at then 'pending' else 'queued' end,
      u.schedule, to_timestamp(u.run_at / 1000), u.timeout_ms, u.max_retries, u.idempotency_key,
      case when u.idempotency_key is not null then to_timestamp((u.created_at + u.ttl_ms) / 1000) end,
      to_timestamp(u.created_at / 1000), to_timestamp(u.created_at / 1000), u.lock_key
    from rows from (json_to_recordset(${document}::json) as (id text, tenant_id text, name text,
      payload text, priority text, schedule text, run_at float8, timeout_ms int4, max_retries int4,
      idempotency_key text, ttl_ms float8, created_at float8, lock_key text))
      with ordinality as u(id, tenant_id, name, payload, priority, schedule, run_at, timeout_ms, max_retries,
        idempotency_key, ttl_ms, created_at, lock_key, ord)`
}

/** Answers what it can; returns the rows to insert again (their key was free or just released). */
async function settle(
  db: Kysely<Database>,
  schema: string,
  queue: string,
  conflicted: Pending[],
  results: InsertResult[],
): Promise<Pending[]> {
  const keyed = conflicted.filter((p) => p.row.idempotencyKey !== undefined)
  const found = await sql<Existing>`
    select id, tenant_id, idempotency_key, idempotency_expires_at, status, created_at, enqueued_at
    from ${sql.id(schema, 'tasks')}
    where queue = ${queue} and (id = any(${conflicted.map((p) => p.row.id)}::text[])
      or (tenant_id, idempotency_key) in (select * from unnest(
        ${keyed.map((p) => p.row.tenantId)}::text[], ${keyed.map((p) => p.row.idempotencyKey!)}::text[])))`.execute(
    db,
  )
  const byId = new Map(found.rows.map((row) => [row.id, row]))
  const byKey = new Map<string, Existing>()
  for (const row of found.rows)
    if (row.idempotency_key !== null) byKey.set(keyOf(row.tenant_id, row.idempotency_key), row)

  const again: Pending[] = []
  const expired: string[] = []
  for (const p of conflicted) {
    const same = byId.get(p.row.id)
    if (same) {
      results[p.index] = answer(same, false)
      continue
    }
    const key = p.row.idempotencyKey
    const holder = key === undefined ? undefined : byKey.get(keyOf(p.row.tenantId, key))
    const expiresAt = holder?.idempotency_expires_at?.getTime() ?? Infinity
    if (holder && expiresAt > p.row.createdAt) {
      results[p.index] = answer(holder, true)
      continue
    }
    if (holder) expired.push(holder.id)
    again.push(p)
  }
  if (expired.length > 0) {
    await sql`update ${sql.id(schema, 'tasks')} set idempotency_key = null
      where queue = ${queue} and id = any(${expired}::text[])`.execute(db)
  }
  return again
}

const keyOf = (tenantId: string, key: string) => `${tenantId}\u0000${key}`

function answer(row: Existing, deduplicated: boolean): InsertResult {
  const result: InsertResult = {
    id: row.id,
    status: row.status,
    createdAt: row.created_at.getTime(),
    deduplicated,
  }
  if (deduplicated) result.confirmed = row.enqueued_at !== null
  return result
}

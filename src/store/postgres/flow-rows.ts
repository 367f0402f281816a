/**
 * Flows and dependency edges in PostgreSQL (migration 9): a flow's tasks, their edges and the flow
 * record are written in one transaction, so either every node exists or none does; the flow-wide
 * idempotency key is judged here in durable mode.
 */
import { type Kysely, sql } from 'kysely'
import type { DependencyEdge, FlowKey, FlowRecord } from '../../task/dependency-model.js'
import type { InsertResult, NewTaskRow } from '../store.js'
import { insertTasks } from './insert-tasks.js'
import type { Database } from './tables.js'

interface Where {
  db: Kysely<Database>
  schema: string
  queue: string
}

export type FlowInsert =
  | { deduplicated: false; results: InsertResult[] }
  | { deduplicated: true; flow: FlowRecord }

/** Inserts tasks with their dependency edges, and the flow record when there is one, atomically. */
export async function insertFlow(
  where: Where,
  rows: readonly (NewTaskRow & { dependsOn?: DependencyEdge[] | undefined })[],
  flow?: { record: FlowRecord; key?: FlowKey | undefined },
): Promise<FlowInsert> {
  const { schema, queue } = where
  return where.db.transaction().execute(async (trx) => {
    if (flow) {
      const { record, key } = flow
      const expiresAt = key ? new Date(record.createdAt + key.ttlMs) : null
      // A key whose time ran out is released first, so the new flow may take it.
      if (key) {
        await sql`update ${sql.id(schema, 'flows')} set idempotency_key = null
          where queue = ${queue} and tenant_id = ${record.tenantId} and idempotency_key = ${key.key}
            and idempotency_expires_at <= ${new Date(record.createdAt)}`.execute(trx)
      }
      const inserted = await sql<{ id: string }>`
        insert into ${sql.id(schema, 'flows')}
          (queue, id, tenant_id, root_id, nodes, idempotency_key, idempotency_expires_at, created_at)
        values (${queue}, ${record.id}, ${record.tenantId}, ${record.rootId ?? null},
          ${JSON.stringify(record.nodes)}::jsonb, ${key?.key ?? null}, ${expiresAt},
          ${new Date(record.createdAt)})
        on conflict do nothing returning id`.execute(trx)
      if (inserted.rows.length === 0) {
        const held = key
          ? await flowOfKey(trx, where, record.tenantId, key.key)
          : await getFlow({ ...where, db: trx }, record.id)
        if (held) return { deduplicated: true, flow: held }
      }
    }
    const results = await insertTasks(trx, schema, queue, rows)
    const edges = rows.flatMap((row, i) =>
      results[i]!.id === row.id && !results[i]!.deduplicated
        ? (row.dependsOn ?? []).map((d) => ({
            task: row.id,
            queue: d.queue,
            id: d.id,
            onFailure: d.onFailure,
          }))
        : [],
    )
    if (edges.length > 0) {
      // A task with dependencies waits for them: pending, whatever its runAt.
      const waiting = [...new Set(edges.map((e) => e.task))]
      await sql`update ${sql.id(schema, 'tasks')} set status = 'pending'
        where queue = ${queue} and id = any(${waiting}::text[])`.execute(trx)
      for (const [i, row] of rows.entries()) if (row.dependsOn?.length) results[i]!.status = 'pending'
      await sql`insert into ${sql.id(schema, 'task_dependencies')}
          (queue, task_id, depends_on_queue, depends_on, on_failure)
        select ${queue}, e.task, e.queue, e.id, e.on_failure
        from json_to_recordset(${JSON.stringify(edges.map((e) => ({ ...e, on_failure: e.onFailure })))}::json)
          as e(task text, queue text, id text, on_failure text)
        on conflict do nothing`.execute(trx)
    }
    return { deduplicated: false, results }
  })
}

interface FlowRow {
  id: string
  tenant_id: string
  root_id: string | null
  nodes: Record<string, string>
  created_at: Date
}

const toFlow = (row: FlowRow): FlowRecord => ({
  id: row.id,
  tenantId: row.tenant_id,
  nodes: row.nodes,
  rootId: row.root_id ?? undefined,
  createdAt: row.created_at.getTime(),
})

async function flowOfKey(
  db: Kysely<Database>,
  where: Where,
  tenantId: string,
  key: string,
): Promise<FlowRecord | null> {
  const { rows } = await sql<FlowRow>`select id, tenant_id, root_id, nodes, created_at
    from ${sql.id(where.schema, 'flows')}
    where queue = ${where.queue} and tenant_id = ${tenantId} and idempotency_key = ${key}`.execute(db)
  return rows[0] ? toFlow(rows[0]) : null
}

export async function getFlow(where: Where, id: string): Promise<FlowRecord | null> {
  const { rows } = await sql<FlowRow>`select id, tenant_id, root_id, nodes, created_at
    from ${sql.id(where.schema, 'flows')} where queue = ${where.queue} and id = ${id}`.execute(where.db)
  return rows[0] ? toFlow(rows[0]) : null
}

/** The dependency edges of these tasks, by task id (tasks without any are left out). */
export async function dependencyEdges(
  where: Where,
  ids: readonly string[],
): Promise<Map<string, DependencyEdge[]>> {
  const out = new Map<string, DependencyEdge[]>()
  if (ids.length === 0) return out
  const { rows } = await sql<{
    task_id: string
    depends_on_queue: string
    depends_on: string
    on_failure: string
  }>`
    select task_id, depends_on_queue, depends_on, on_failure from ${sql.id(where.schema, 'task_dependencies')}
    where queue = ${where.queue} and task_id = any(${[...ids]}::text[])`.execute(where.db)
  for (const row of rows) {
    const edges = out.get(row.task_id) ?? []
    edges.push({
      id: row.depends_on,
      queue: row.depends_on_queue,
      onFailure: row.on_failure as DependencyEdge['onFailure'],
    })
    out.set(row.task_id, edges)
  }
  return out
}

/**
 * A stored row handed back to the broker: by reconciliation, a restore after Redis lost its data,
 * a repeat submit that matched a row the broker never confirmed, and a durable cancel.
 */
import type { NewTask } from '../broker/broker.js'
import type { StoredTask } from '../store/store.js'

/**
 * The task as the broker's `enqueue` takes it, from its stored row, due at `runAt`. It keeps the
 * idempotency key, from which a handler's `ctx.schedule` is read.
 */
export function storedToNewTask(row: StoredTask, runAt: number): NewTask {
  return {
    id: row.id,
    name: row.name,
    tenantId: row.tenantId,
    payload: row.payload,
    priority: row.priority,
    runAt,
    timeoutMs: row.timeoutMs,
    maxRetries: row.maxRetries,
    createdAt: row.createdAt,
    idempotencyKey: row.idempotencyKey,
    // The store judges keys; the broker keeps the key only to show it (a TTL of 0 maps nothing).
    idempotencyTtlMs: 0,
    attempt: row.attempt,
    lockKey: row.lockKey,
  }
}

/**
 * The durable cancel (issue 14 item 3): a cancel is acknowledged only once PostgreSQL records it, so
 * an acknowledged cancel is as durable as an acknowledged submit. Three steps, in this order:
 * 1. The broker cancels first: it alone knows whether an attempt is running, and its cancel is
 *    atomic with claims (a claim skips the tombstone; a running task is TASK_PROCESSING). A task the
 *    broker does not hold (its hand-off has not happened yet, or Redis lost it and recovery has not
 *    restored it) is judged by its stored row instead.
 * 2. The store records `cancelled` (a terminal status no later change overrides, and which recovery
 *    never restores) before the call resolves; if it cannot, the call rejects with the retryable
 *    STORE_UNAVAILABLE and nothing was acknowledged. A retry finishes the job.
 * 3. The broker is made to hold the task as cancelled (`tombstone`), so a copy put back between 1
 *    and 2 (Redis lost its data and recovery restored it, or reconciliation handed it over) cannot
 *    run, and store and broker agree.
 */
import type { Broker, TaskRecord } from '../broker/broker.js'
import { storedToNewTask } from '../durable/stored-task.js'
import { TaskloomError } from '../errors.js'
import type { Logger } from '../logger.js'
import type { Store, StoredTask } from '../store/store.js'
import { type TaskChange, TERMINAL_STATUSES } from '../task/model.js'

/** A due time no claim reaches: the cancelled record a durable cancel leaves for an absent task. */
const NEVER_MS = 100 * 365 * 86_400_000

export interface DurableCancelHost {
  broker: Broker
  store: Store
  logger: Logger
  /** Runs a store call, mapping driver errors to STORE_UNAVAILABLE (or INVALID_INPUT). */
  fromStore<T>(call: () => Promise<T>): Promise<T>
}

/** Cancels `id` durably (see the module comment); answers the broker's cancelled record. */
export async function cancelDurably(host: DurableCancelHost, id: string): Promise<TaskRecord> {
  const { broker, store, fromStore } = host
  const now = Date.now()
  let record: TaskRecord | null = null
  try {
    record = await broker.cancel(id, now)
  } catch (err) {
    if (!(err instanceof TaskloomError)) throw err
    if (err.code === 'TASK_FINISHED') {
      // Cancelled in the broker but not yet in the store: a retry of a cancel that failed.
      const live = await broker.get(id)
      if (live?.status !== 'cancelled') throw err
      if ((await fromStore(() => store.get(id)))?.status === 'cancelled') throw err
      record = live
    } else if (err.code !== 'NOT_FOUND') throw err
  }
  let attempt = record?.attempt
  if (!record) {
    const row = await fromStore(() => store.get(id))
    if (!row) throw new TaskloomError('NOT_FOUND', `task ${id} not found`)
    if (row.status === 'processing')
      throw new TaskloomError('TASK_PROCESSING', `task ${id} is processing and cannot be cancelled`)
    // A cancel the store has: a repeat, or the retry of one whose last step failed (Redis down).
    if (row.status === 'cancelled') await tombstone(host, row)
    if (TERMINAL_STATUSES.has(row.status))
      throw new TaskloomError('TASK_FINISHED', `task ${id} is ${row.status} and cannot be cancelled`)
    attempt = row.attempt
  }
  const change: TaskChange = { id, status: 'cancelled', attempt: attempt ?? 0, at: now }
  await fromStore(() => store.applyUpdates([change]))
  const stored = await fromStore(() => store.get(id))
  if (stored?.status !== 'cancelled') {
    throw new TaskloomError(
      'TASK_FINISHED',
      `task ${id} is ${stored?.status ?? 'gone'} in the store and cannot be cancelled`,
    )
  }
  return tombstone(host, stored)
}

/**
 * Step 3: makes sure the broker holds the task as cancelled. A copy that Redis losing its data (and
 * recovery restoring it) or reconciliation put back is cancelled; a task the broker does not hold
 * at all gets a cancelled record, by enqueueing it far in the future (never claimable) and
 * cancelling it, so a restore or reconciliation that read the row before the store write and
 * enqueues it now finds its id taken (enqueue is idempotent by id) instead of bringing it back.
 */
async function tombstone(host: DurableCancelHost, stored: StoredTask): Promise<TaskRecord> {
  const { broker, logger } = host
  const now = Date.now()
  const live = await broker.get(stored.id)
  if (live?.status === 'cancelled') return live
  if (!live) await broker.enqueue([storedToNewTask(stored, now + NEVER_MS)], now)
  try {
    return await broker.cancel(stored.id, now)
  } catch (err) {
    if (err instanceof TaskloomError && err.code === 'TASK_PROCESSING') {
      logger.error(
        { err, task_id: stored.id },
        'a cancelled task was restored to the broker and started before its cancel could reach it; ' +
          'the store keeps it cancelled, this attempt still runs',
      )
    }
    throw err
  }
}

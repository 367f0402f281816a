/**
 * The task model: names, statuses and records shared by every layer. No I/O, no drivers.
 */

/** Priority levels, highest first. Claims always drain a higher level before a lower one. */
export const PRIORITIES = ['critical', 'high', 'normal', 'low'] as const
export type Priority = (typeof PRIORITIES)[number]

/**
 * The six statuses of the spec.
 * - `pending`: scheduled for later (a delay, a `runAt`, or a retry waiting out its backoff)
 * - `queued`: ready to be claimed
 * - `processing`: leased by a worker
 * - `completed`: finished with a result
 * - `failed`: retries exhausted; the task sits in the dead-letter queue
 * - `cancelled`: cancelled before it ran
 */
export const TASK_STATUSES = ['pending', 'queued', 'processing', 'completed', 'failed', 'cancelled'] as const
export type TaskStatus = (typeof TASK_STATUSES)[number]

export const TERMINAL_STATUSES: ReadonlySet<TaskStatus> = new Set(['completed', 'failed', 'cancelled'])

/** How one attempt ended, when it did not complete. */
export type AttemptOutcome = 'error' | 'timeout' | 'lease-expired' | 'no-handler' | 'invalid-input'

/** One failed attempt, kept in the task's history (oldest first). */
export interface AttemptRecord {
  attempt: number
  workerId: string
  startedAt: number
  endedAt: number
  outcome: AttemptOutcome
  error: ErrorInfo
}

/** A serialisable error. */
export interface ErrorInfo {
  name: string
  message: string
  code?: string
  stack?: string
}

export function toErrorInfo(err: unknown): ErrorInfo {
  if (err instanceof Error) {
    const info: ErrorInfo = { name: err.name, message: err.message }
    const code = (err as { code?: unknown }).code
    if (typeof code === 'string') info.code = code
    if (err.stack) info.stack = err.stack
    return info
  }
  return { name: 'Error', message: typeof err === 'string' ? err : (JSON.stringify(err) ?? String(err)) }
}

/**
 * One state change of a task, as the broker reports it on its change feed and the store applies it.
 * See the Store's `applyUpdates` for how changes are ordered so a replay never moves a task back.
 */
export interface TaskChange {
  id: string
  status: TaskStatus
  /** Attempts started in the current budget, as the broker counts them (0 before the first claim). */
  attempt: number
  /** When the change happened. */
  at: number
  /** A new due time (a retry's backoff, a delay). */
  runAt?: number | undefined
  /** Start of the attempt that is now running. */
  startedAt?: number | undefined
  workerId?: string | undefined
  /** JSON text, with `completed`. */
  result?: string | undefined
  /** The latest attempt's error. */
  error?: ErrorInfo | undefined
  /** A failed attempt to append to the history. */
  failedAttempt?: AttemptRecord | undefined
  /** A dead-lettered task sent back to the queue. */
  revive?: boolean | undefined
}

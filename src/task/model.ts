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

// --- Task output and queue events (issue 17: ctx.progress, ctx.log, queue.events) ---

/** Progress (`ctx.progress`) or log lines (`ctx.log`) of a running attempt, as the change feed carries them. */
export interface TaskOutput {
  id: string
  /** The fencing token of the attempt that wrote it (orders lines across attempts). */
  token: number
  at: number
  /** JSON text of the latest progress value. */
  progress?: string | undefined
  /** Log lines, oldest first. */
  logs?: TaskLogLine[] | undefined
}

/** One line written by `ctx.log`. */
export interface TaskLogLine {
  /** The fencing token of the attempt that wrote it. */
  token: number
  /** Its number within the task, from 1 (restarts after Redis lost its data; `token` still orders). */
  seq: number
  /** When it was written, epoch ms. */
  at: number
  line: string
}

/**
 * What a queue event says happened, as the broker records it (`queue.events`, src/events/):
 * a task entered the queue (`queued`, a submit or a dead-letter retry), completed, had an attempt
 * fail and will run again (`retrying`), failed for good (`dead`), was cancelled, or reported progress.
 */
export type QueueEventType = 'queued' | 'completed' | 'retrying' | 'dead' | 'cancelled' | 'progress'

/** One event as the broker stores it. */
export interface QueueEventRecord {
  /** Stream position: strictly increasing; pass the last one seen to resume after it. */
  eventId: string
  type: QueueEventType
  taskId: string
  name: string
  tenantId: string
  attempt: number
  at: number
  /** `queued` and `retrying`: when the task becomes claimable. */
  runAt?: number | undefined
  /** `retrying` and `dead`: the failed attempt's error. */
  error?: ErrorInfo | undefined
  /** `progress`: JSON text of the value. */
  progress?: string | undefined
}

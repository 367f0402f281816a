/** The typed payloads of queue events (`queue.events`), one per event name. */
import type { ErrorInfo } from '../task/model.js'

/** What every event carries. */
export interface QueueEventBase {
  /** Its position in the queue's event stream: pass the last one handled as `from` to resume after it. */
  eventId: string
  taskId: string
  /** The task's name. */
  name: string
  tenantId: string
  /** Attempts started when it happened (0 before the first). */
  attempt: number
  at: Date
}

export interface QueueEvents {
  /** Submitted (or sent back from the dead-letter queue); `runAt` later than `at`: delayed until then. */
  queued: QueueEventBase & { runAt: Date }
  completed: QueueEventBase
  /** An attempt failed (an error, a timeout or a lost lease): `retrying` or `dead` follows from the same entry. */
  failed: QueueEventBase & { error: ErrorInfo; willRetry: boolean; runAt?: Date | undefined }
  /** An attempt failed and the task runs again at `runAt`. */
  retrying: QueueEventBase & { error: ErrorInfo; runAt: Date }
  /** An attempt failed and no retry is left: the task is `failed`, in the dead-letter queue. */
  dead: QueueEventBase & { error: ErrorInfo }
  cancelled: QueueEventBase
  /** `ctx.progress(value)`. */
  progress: QueueEventBase & { progress: number | Record<string, unknown> }
}

export type QueueEventName = keyof QueueEvents
export type QueueEventListener<E extends QueueEventName> = (event: QueueEvents[E]) => void

export const QUEUE_EVENT_NAMES: readonly QueueEventName[] = [
  'queued',
  'completed',
  'failed',
  'retrying',
  'dead',
  'cancelled',
  'progress',
]

/**
 * One error class with a stable string `code` (tRPC's TRPCError shape), a table from code to
 * HTTP status, and `toTaskloomError` for anything thrown.
 */

export const ERROR_STATUS = {
  INVALID_INPUT: 400,
  INVALID_OPTIONS: 400,
  UNKNOWN_TASK: 400,
  INVALID_CRON: 400,
  NOT_FOUND: 404,
  TASK_PROCESSING: 409,
  TASK_FINISHED: 409,
  NOT_IN_DLQ: 409,
  INVALID_STATE: 409,
  QUEUE_IN_USE: 409,
  LOCK_BUSY: 409,
  LOCK_LOST: 409,
  /** An idempotency key repeated with a different task name or input. */
  IDEMPOTENCY_CONFLICT: 422,
  BREAKER_OPEN: 503,
  CLOSED: 503,
  BROKER_UNAVAILABLE: 503,
  STORE_UNAVAILABLE: 503,
  SCHEMA_OUTDATED: 503,
  /** The schema's recorded migrations were made by another taskloom build. */
  SCHEMA_MISMATCH: 503,
  /** `queue.waitFor` ran out of time. */
  TIMEOUT: 504,
  INTERNAL: 500,
} as const satisfies Record<string, number>

export type TaskloomErrorCode = keyof typeof ERROR_STATUS

export interface Issue {
  path: string
  message: string
}

export class TaskloomError extends Error {
  override readonly name = 'TaskloomError'
  readonly code: TaskloomErrorCode
  /** Field-level problems, for `INVALID_INPUT` and `INVALID_OPTIONS`. */
  readonly issues: readonly Issue[]
  /** Whether trying the same call again later can succeed. */
  readonly retryable: boolean

  constructor(
    code: TaskloomErrorCode,
    message: string,
    options: { cause?: unknown; issues?: readonly Issue[]; retryable?: boolean } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.issues = options.issues ?? []
    this.retryable = options.retryable ?? (code === 'BROKER_UNAVAILABLE' || code === 'STORE_UNAVAILABLE')
  }

  get httpStatus(): number {
    return ERROR_STATUS[this.code]
  }
}

export function toTaskloomError(err: unknown): TaskloomError {
  if (err instanceof TaskloomError) return err
  const message = err instanceof Error ? err.message : String(err)
  return new TaskloomError('INTERNAL', message, { cause: err })
}

/**
 * Throw this from a handler to fail the task at once, without the remaining retries
 * (BullMQ calls it `UnrecoverableError`). The task goes straight to the dead-letter queue.
 */
export class NonRetryableError extends Error {
  override readonly name: string = 'NonRetryableError'
}

/** Raised inside a handler's `signal` when its per-task timeout elapses. */
export class TaskTimeoutError extends Error {
  override readonly name = 'TaskTimeoutError'
}

/** Raised inside a handler's `signal` when the worker lost the task's lease to another worker. */
export class LeaseLostError extends Error {
  override readonly name = 'LeaseLostError'
}

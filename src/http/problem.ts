/**
 * RFC 9457 problem details: every error the API answers is `application/problem+json` with a stable
 * `code` that clients can switch on (the `type` URI is derived from it).
 */
import { type Issue, TaskloomError } from '../errors.js'

export const PROBLEM_STATUS = {
  INVALID_JSON: 400,
  INVALID_INPUT: 400,
  INVALID_QUERY: 400,
  UNKNOWN_TASK: 400,
  INVALID_REQUEST: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  ROUTE_NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  TASK_PROCESSING: 409,
  TASK_FINISHED: 409,
  NOT_IN_DLQ: 409,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  IDEMPOTENCY_CONFLICT: 422,
  UNSUPPORTED_MEDIA_TYPE: 415,
  RATE_LIMITED: 429,
  QUOTA_EXCEEDED: 429,
  INTERNAL: 500,
  NOT_IMPLEMENTED: 501,
  UNAVAILABLE: 503,
} as const satisfies Record<string, number>

export type ProblemCode = keyof typeof PROBLEM_STATUS

const TITLES: Record<ProblemCode, string> = {
  INVALID_JSON: 'The request body is not valid JSON',
  INVALID_INPUT: 'The request has invalid fields',
  INVALID_QUERY: 'The query string has invalid parameters',
  UNKNOWN_TASK: 'No task is registered under that name',
  INVALID_REQUEST: 'The request is malformed',
  UNAUTHENTICATED: 'A valid API key is required',
  FORBIDDEN: 'The API key lacks the scope this needs',
  NOT_FOUND: 'Not found',
  ROUTE_NOT_FOUND: 'No such endpoint',
  METHOD_NOT_ALLOWED: 'Method not allowed on this endpoint',
  TASK_PROCESSING: 'The task is processing and cannot be cancelled',
  TASK_FINISHED: 'The task has already finished',
  NOT_IN_DLQ: 'The task is not in the dead-letter queue',
  CONFLICT: 'The request conflicts with the current state',
  PAYLOAD_TOO_LARGE: 'The request body is too large',
  IDEMPOTENCY_CONFLICT: 'The idempotency key was already used with a different request',
  UNSUPPORTED_MEDIA_TYPE: 'The request body must be application/json',
  RATE_LIMITED: 'Too many requests',
  QUOTA_EXCEEDED: 'The monthly quota is used up',
  INTERNAL: 'Internal error',
  NOT_IMPLEMENTED: 'Not available on this server',
  UNAVAILABLE: 'A backing service is unavailable',
}

/** A problem body, as sent. */
export interface ProblemBody {
  type: string
  title: string
  status: number
  code: ProblemCode
  detail: string
  instance?: string
  request_id?: string
  /** Field-level problems (400s): each names the field by its dotted path. */
  errors?: { path: string; message: string }[]
}

export class HttpProblem extends Error {
  override readonly name = 'HttpProblem'
  readonly code: ProblemCode
  readonly status: number
  readonly errors: readonly Issue[]
  readonly headers: Record<string, string>

  constructor(
    code: ProblemCode,
    detail: string,
    options: { errors?: readonly Issue[]; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(detail, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.status = PROBLEM_STATUS[code]
    this.errors = options.errors ?? []
    this.headers = options.headers ?? {}
  }

  toBody(instance: string, requestId: string): ProblemBody {
    const body: ProblemBody = {
      type: problemType(this.code),
      title: TITLES[this.code],
      status: this.status,
      code: this.code,
      detail: this.message,
      instance,
      request_id: requestId,
    }
    if (this.errors.length > 0) body.errors = this.errors.map((e) => ({ path: e.path, message: e.message }))
    return body
  }
}

export function problemType(code: ProblemCode): string {
  return `https://taskloom.dev/problems/${code.toLowerCase().replaceAll('_', '-')}`
}

/** Maps anything thrown by a handler to a problem; TaskloomErrors keep their code where it fits. */
export function toProblem(err: unknown): HttpProblem {
  if (err instanceof HttpProblem) return err
  if (err instanceof TaskloomError) {
    switch (err.code) {
      case 'INVALID_INPUT':
      case 'INVALID_OPTIONS':
        return new HttpProblem('INVALID_INPUT', err.message, { errors: err.issues, cause: err })
      case 'UNKNOWN_TASK':
      case 'NOT_FOUND':
      case 'TASK_PROCESSING':
      case 'TASK_FINISHED':
      case 'NOT_IN_DLQ':
      case 'IDEMPOTENCY_CONFLICT':
        return new HttpProblem(err.code, err.message, { cause: err })
      case 'INVALID_STATE':
      case 'QUEUE_IN_USE':
        return new HttpProblem('CONFLICT', err.message, { cause: err })
      case 'CLOSED':
      case 'BROKER_UNAVAILABLE':
      case 'STORE_UNAVAILABLE':
      case 'SCHEMA_OUTDATED':
      case 'SCHEMA_MISMATCH':
        return new HttpProblem('UNAVAILABLE', err.message, { cause: err, headers: { 'retry-after': '1' } })
      default:
        return new HttpProblem('INTERNAL', 'internal error', { cause: err })
    }
  }
  return new HttpProblem('INTERNAL', 'internal error', { cause: err })
}

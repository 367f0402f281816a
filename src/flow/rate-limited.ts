/**
 * The handler's side of flow control: an upstream said "slow down". Throwing RateLimitedError (or
 * calling `ctx.rateLimit(ms)`) gives the task back without spending an attempt and stops its group
 * (or its task name) fleet-wide until the time is up.
 */
import type { Broker, ClaimedTask, FlowScope } from '../broker/broker.js'
import { TaskloomError } from '../errors.js'

export interface RateLimitedOptions {
  /** How long the scope waits before its tasks start again, ms (1 to 86,400,000). */
  retryAfterMs: number
  /** What waits: the task's group (default; its tenant unless `group` was given) or its task name. */
  scope?: 'group' | 'task'
  message?: string
}

/**
 * Throw from a handler when an upstream throttles you: the task goes back to the queue (no attempt
 * spent) and nothing of its group (or task name, `scope: 'task'`) starts anywhere in the fleet for
 * `retryAfterMs`.
 * @example
 * if (res.status === 429) throw new RateLimitedError({ retryAfterMs: 30_000 })
 */
export class RateLimitedError extends Error {
  override readonly name = 'RateLimitedError'
  readonly retryAfterMs: number
  readonly scope: 'group' | 'task'

  constructor(options: RateLimitedOptions) {
    const ms = options?.retryAfterMs
    if (!Number.isInteger(ms) || ms < 1 || ms > 86_400_000) {
      throw new TaskloomError('INVALID_OPTIONS', 'retryAfterMs must be an integer from 1 to 86400000', {
        issues: [{ path: 'retryAfterMs', message: 'expected 1-86400000 ms' }],
      })
    }
    super(options.message ?? `rate limited upstream; retry after ${ms} ms`)
    this.retryAfterMs = ms
    this.scope = options.scope ?? 'group'
  }
}

/** The scope a rate-limited task stops. */
export function throttleScope(task: ClaimedTask, error: RateLimitedError): FlowScope {
  return error.scope === 'task'
    ? { kind: 'task', name: task.name }
    : { kind: 'group', group: task.group ?? task.tenantId }
}

/** Gives the task back and stops its scope; answers the scope and until when, or null when stale. */
export async function throttleTask(
  broker: Broker,
  task: ClaimedTask,
  error: RateLimitedError,
): Promise<{ scope: FlowScope; until: number } | null> {
  const now = Date.now()
  const scope = throttleScope(task, error)
  const until = now + error.retryAfterMs
  const [outcome] = await broker.throttle([{ id: task.id, token: task.token }], scope, until, now)
  return outcome === 'ok' ? { scope, until } : null
}

/**
 * Circuit breakers shared by the fleet through the broker (Redis: breaker.lua), so every worker
 * opens together. A breaker protects a dependency and is opt-in: named (`defineTask({ breaker:
 * 'smtp' })`, `ctx.breaker('smtp').run(fn)`), per task name (`breaker: true`, or the worker's
 * `taskBreakers`), and either shared by all tenants or one per tenant (`'smtp@acme'`). Closed → open after `failureThreshold` consecutive failures →
 * half-open after `resetMs` (one trial task runs) → closed after a success, open again after a failure.
 * While open, tasks of the breaker are deferred to the half-open time without spending an attempt.
 */
import type { BreakerReply, BreakerSettings, Broker } from '../broker/broker.js'
import { TaskloomError } from '../errors.js'

export interface BreakerOptions {
  /** Consecutive failures that open the breaker. Default 5. */
  failureThreshold?: number
  /** How long it stays open before one trial runs (half-open). Default 30,000 ms. */
  resetMs?: number
  /** How long a half-open trial may take before another task may try. Default 60,000 ms. */
  trialMs?: number
}

export const BREAKER_DEFAULTS: BreakerSettings = { failureThreshold: 5, resetMs: 30_000, trialMs: 60_000 }

export interface BreakerInfo {
  name: string
  state: 'closed' | 'open' | 'half-open'
  /** Consecutive failures counted. */
  failures: number
  /** Open: when the next trial may run. Half-open: when the running trial lapses. Closed: null. */
  openUntil: Date | null
}

export interface BreakerHandle {
  readonly name: string
  state(): Promise<BreakerInfo>
  /** The same as `state()`. */
  info(): Promise<BreakerInfo>
  /** Closes the breaker and clears its failure count (an operator's override). */
  reset(): Promise<BreakerInfo>
}

/** Raised by `ctx.breaker(name).run(fn)` while the breaker is open; the worker defers the task. */
export class BreakerOpenError extends TaskloomError {
  readonly breaker: string
  readonly retryAt: number
  constructor(breaker: string, retryAt: number) {
    super('BREAKER_OPEN', `circuit breaker ${breaker} is open until ${new Date(retryAt).toISOString()}`, {
      retryable: true,
    })
    this.breaker = breaker
    this.retryAt = retryAt
  }
}

export function checkBreakerName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length < 1 || name.length > 200) {
    throw new TaskloomError('INVALID_OPTIONS', 'a breaker name must be a string of 1-200 characters')
  }
}

/** A tenant's own breaker of a dependency: `'<name>@<tenantId>'`. */
export function tenantBreaker(name: string, tenantId: string): string {
  return `${name}@${tenantId}`
}

export function breakerSettings(where: string, options: BreakerOptions | undefined): BreakerSettings {
  const s = { ...BREAKER_DEFAULTS, ...options }
  const bad: string[] = []
  const int = (v: number, min: number, max: number) => Number.isInteger(v) && v >= min && v <= max
  if (!int(s.failureThreshold, 1, 1_000_000))
    bad.push('failureThreshold must be an integer from 1 to 1000000')
  if (!int(s.resetMs, 1, 86_400_000)) bad.push('resetMs must be an integer from 1 to 86400000')
  if (!int(s.trialMs, 1, 86_400_000)) bad.push('trialMs must be an integer from 1 to 86400000')
  if (bad.length > 0) {
    throw new TaskloomError('INVALID_OPTIONS', `invalid breaker ${where}: ${bad.join('; ')}`, {
      issues: bad.map((message) => ({ path: `breakers.${where}`, message })),
    })
  }
  return s
}

export function toBreakerInfo(name: string, reply: BreakerReply): BreakerInfo {
  return {
    name,
    state: reply.state,
    failures: reply.failures,
    openUntil: reply.openUntil === null ? null : new Date(reply.openUntil),
  }
}

/** `queue.breaker(name)`, or with `tenantId` that tenant's own breaker of `name`. */
export function breakerHandle(broker: Broker, base: string, tenantId?: string): BreakerHandle {
  checkBreakerName(base)
  if (
    tenantId !== undefined &&
    (typeof tenantId !== 'string' || !/^[A-Za-z0-9._:@-]{1,128}$/.test(tenantId))
  ) {
    throw new TaskloomError('INVALID_OPTIONS', `invalid tenantId ${JSON.stringify(tenantId)}`)
  }
  const name = tenantId === undefined ? base : tenantBreaker(base, tenantId)
  const call = async (op: 'state' | 'reset') =>
    toBreakerInfo(name, await broker.breaker({ name, op, settings: BREAKER_DEFAULTS }, Date.now()))
  return { name, state: () => call('state'), info: () => call('state'), reset: () => call('reset') }
}

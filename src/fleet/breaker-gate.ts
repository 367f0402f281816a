/**
 * A worker's side of the shared circuit breakers: asks before running a task of a breaker, reports
 * outcomes. A fresh "closed, no failures" answer is trusted for `cacheMs` without asking again, so a
 * healthy breaker costs one round trip per breaker per `cacheMs`, not one per task; other workers see
 * an open breaker within that time.
 */
import type { BreakerReply, BreakerSettings, Broker } from '../broker/broker.js'
import type { Logger } from '../logger.js'
import {
  BREAKER_DEFAULTS,
  BreakerOpenError,
  type BreakerOptions,
  breakerSettings,
  checkBreakerName,
  tenantBreaker,
} from './breakers.js'

/** How soon a task turned away during another task's half-open trial looks again. */
const HALF_OPEN_RECHECK_MS = 1000

/** `trialUntil`: with `trial`, the half-open trial's deadline, which also names it (see `release`). */
export type Admission =
  | { allowed: true; trial: false }
  | { allowed: true; trial: true; trialUntil: number }
  | { allowed: false; retryAt: number }

export interface BreakerGateOptions {
  /** Settings per breaker name; `default` applies to the others. */
  breakers?: Record<string, BreakerOptions>
  cacheMs: number
}

export class BreakerGate {
  private readonly settings = new Map<string, BreakerSettings>()
  private readonly fallback: BreakerSettings
  private readonly known = new Map<string, { reply: BreakerReply; at: number }>()

  constructor(
    private readonly broker: Broker,
    private readonly logger: Logger,
    private readonly options: BreakerGateOptions,
    private readonly onOpen: (name: string, openUntil: number) => void,
  ) {
    const given = options.breakers ?? {}
    this.fallback = given.default ? breakerSettings('default', given.default) : BREAKER_DEFAULTS
    for (const [name, o] of Object.entries(given)) {
      if (name !== 'default') this.settings.set(name, breakerSettings(name, o))
    }
  }

  private settingsOf(name: string): BreakerSettings {
    return this.settings.get(name) ?? this.fallback
  }

  /**
   * `name` is the breaker asked about; `settingsName` the name its settings are kept under (for a
   * tenant's breaker `'smtp@acme'`, `'smtp'`).
   */
  async admit(name: string, settingsName = name): Promise<Admission> {
    const known = this.known.get(name)
    const now = Date.now()
    if (known && known.reply.state === 'closed' && now - known.at < this.options.cacheMs) {
      return { allowed: true, trial: false }
    }
    const reply = await this.broker.breaker(
      { name, op: 'acquire', settings: this.settingsOf(settingsName) },
      now,
    )
    this.known.set(name, { reply, at: now })
    if (reply.allowed) {
      if (!reply.trial) return { allowed: true, trial: false }
      return { allowed: true, trial: true, trialUntil: reply.openUntil ?? now }
    }
    const until = reply.openUntil ?? now + this.settingsOf(settingsName).resetMs
    // Half-open: another task's trial is running; look again soon rather than at its deadline, so
    // the waiting tasks run shortly after the trial closes the breaker.
    return {
      allowed: false,
      retryAt: reply.state === 'half-open' ? Math.min(until, now + HALF_OPEN_RECHECK_MS) : until,
    }
  }

  async success(name: string, trial: boolean, settingsName = name): Promise<void> {
    const known = this.known.get(name)
    if (!trial && known && known.reply.state === 'closed' && known.reply.failures === 0) return
    const now = Date.now()
    const settings = this.settingsOf(settingsName)
    const reply = await this.broker.breaker({ name, op: 'success', settings }, now)
    if (known?.reply.state !== 'closed') this.logger.info({ breaker: name }, `circuit breaker ${name} closed`)
    this.known.set(name, { reply, at: now })
  }

  /**
   * Ends a half-open trial without a verdict: the breaker stays half-open and the next task tries.
   * `trialUntil` names the trial, so a trial that lapsed and was given to another task is left alone.
   */
  async release(name: string, trialUntil: number, settingsName = name): Promise<void> {
    const now = Date.now()
    const call = { name, op: 'release' as const, settings: this.settingsOf(settingsName), trialUntil }
    const reply = await this.broker.breaker(call, now)
    this.known.set(name, { reply, at: now })
  }

  async failure(name: string, settingsName = name): Promise<void> {
    const now = Date.now()
    const settings = this.settingsOf(settingsName)
    const reply = await this.broker.breaker({ name, op: 'failure', settings }, now)
    this.known.set(name, { reply, at: now })
    if (reply.opened) {
      this.logger.warn(
        { breaker: name, failures: reply.failures, open_until: new Date(reply.openUntil!).toISOString() },
        `circuit breaker ${name} opened after ${reply.failures} consecutive failures; its tasks are deferred`,
      )
      this.onOpen(name, reply.openUntil!)
    }
  }

  /**
   * `ctx.breaker(name)`: guards one call inside a handler. With `tenantId`, the tenant's own breaker
   * of that name (its settings are `name`'s).
   */
  handle(base: string, tenantId?: string): { run<T>(fn: () => T | Promise<T>): Promise<T> } {
    checkBreakerName(base)
    const name = tenantId === undefined ? base : tenantBreaker(base, tenantId)
    return {
      run: async <T>(fn: () => T | Promise<T>): Promise<T> => {
        const admission = await this.admit(name, base)
        if (!admission.allowed) throw new BreakerOpenError(name, admission.retryAt)
        let result: T
        try {
          result = await fn()
        } catch (err) {
          await this.failure(name, base).catch(() => {})
          throw err
        }
        await this.success(name, admission.trial, base).catch(() => {})
        return result
      },
    }
  }
}

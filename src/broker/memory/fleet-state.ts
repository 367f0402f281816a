/**
 * The in-process broker's queue-wide fleet state, the twin of lock.lua, breaker.lua and fleet.lua:
 * distributed locks with fencing tokens from the broker's counter, circuit breakers and worker heartbeats.
 */
import type { BreakerCall, BreakerReply, LockGrant, WorkerBeat } from '../broker.js'

/** How long a silent worker stays listed (as unhealthy) before it is dropped; as in Redis. */
const WORKER_RETAIN_MS = 3_600_000

interface Hold {
  token: number
  expiresAt: number
}

interface BreakerState {
  state: 'open' | 'half-open' | 'closed'
  failures: number
  openUntil: number
  trialUntil: number
}

export class FleetState {
  /** `nextToken`: the broker's one fencing counter, shared with claims, so lock tokens only grow. */
  constructor(private readonly nextToken: () => number) {}

  private readonly holds = new Map<string, Hold>()
  private readonly breakers = new Map<string, BreakerState>()
  private readonly workers = new Map<string, WorkerBeat>()

  acquireLock(key: string, ttlMs: number, now: number): LockGrant {
    const hold = this.holds.get(key)
    if (hold && hold.expiresAt > now) return { acquired: false, heldUntil: hold.expiresAt }
    const token = this.nextToken()
    this.holds.set(key, { token, expiresAt: now + ttlMs })
    return { acquired: true, token, expiresAt: now + ttlMs }
  }

  extendLock(key: string, token: number, ttlMs: number, now: number): boolean {
    const hold = this.liveHold(key, token, now)
    if (hold) hold.expiresAt = now + ttlMs
    return hold !== undefined
  }

  releaseLock(key: string, token: number, now: number): boolean {
    const hold = this.liveHold(key, token, now)
    if (hold) this.holds.delete(key)
    return hold !== undefined
  }

  private liveHold(key: string, token: number, now: number): Hold | undefined {
    const hold = this.holds.get(key)
    if (!hold) return undefined
    if (hold.expiresAt <= now) {
      this.holds.delete(key)
      return undefined
    }
    return hold.token === token ? hold : undefined
  }

  breaker(call: BreakerCall, now: number): BreakerReply {
    const { failureThreshold, resetMs, trialMs } = call.settings
    const b = this.breakers.get(call.name) ?? { state: 'closed', failures: 0, openUntil: 0, trialUntil: 0 }
    let allowed = false
    let trial = false
    let opened = false
    switch (call.op) {
      case 'acquire':
        if (b.state === 'closed') allowed = true
        else if (
          (b.state === 'open' && now >= b.openUntil) ||
          (b.state === 'half-open' && now >= b.trialUntil)
        ) {
          b.state = 'half-open'
          b.trialUntil = now + trialMs
          allowed = true
          trial = true
        }
        break
      case 'success':
      case 'reset':
        b.state = 'closed'
        b.failures = 0
        break
      case 'failure':
        b.failures += 1
        if (b.state === 'half-open' || (b.state === 'closed' && b.failures >= failureThreshold)) {
          b.state = 'open'
          b.openUntil = now + resetMs
          opened = true
        }
        break
      case 'release':
        if (b.state === 'half-open' && b.trialUntil === call.trialUntil) b.trialUntil = now
        break
      case 'state':
        break
    }
    if (b.state === 'closed' && b.failures === 0) this.breakers.delete(call.name)
    else this.breakers.set(call.name, b)
    const openUntil = b.state === 'open' ? b.openUntil : b.state === 'half-open' ? b.trialUntil : null
    return { state: b.state, failures: b.failures, openUntil, allowed, trial, opened }
  }

  heartbeat(beat: WorkerBeat): void {
    this.workers.set(beat.id, { ...beat })
  }

  removeWorker(id: string): void {
    this.workers.delete(id)
  }

  listWorkers(): WorkerBeat[] {
    return [...this.workers.values()].map((w) => ({ ...w }))
  }

  /** Marks workers silent for 3 intervals unhealthy (once) and answers their ids. */
  reap(now: number): Set<string> {
    const dead = new Set<string>()
    for (const [id, beat] of this.workers) {
      if (beat.lastHeartbeat + 3 * beat.heartbeatMs > now) continue
      if (beat.lastHeartbeat + WORKER_RETAIN_MS < now) this.workers.delete(id)
      else if (beat.status !== 'unhealthy') {
        beat.status = 'unhealthy'
        dead.add(id)
      }
    }
    return dead
  }
}

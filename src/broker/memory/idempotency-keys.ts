/**
 * Idempotency keys of one queue: (tenant, key) to the task that claimed it, until the key's TTL
 * runs out. Expired keys are swept in expiry order, so memory stays bounded by the live keys.
 */
import { Timeline } from './timeline.js'

interface Claim<T> {
  value: T
  expiresAt: number
}

export class IdempotencyKeys<T> {
  private readonly claims = new Map<string, Claim<T>>()
  private readonly expiry = new Timeline<string>()

  /** The value holding (tenantId, key) at `now`, if the key has not expired. */
  find(tenantId: string, key: string, now: number): T | undefined {
    const claim = this.claims.get(keyOf(tenantId, key))
    return claim && claim.expiresAt > now ? claim.value : undefined
  }

  remember(tenantId: string, key: string, value: T, expiresAt: number): void {
    const id = keyOf(tenantId, key)
    this.claims.set(id, { value, expiresAt })
    this.expiry.add(expiresAt, id)
  }

  /** Forgets every key expired at `now`. */
  sweep(now: number): void {
    for (const id of this.expiry.popAllDue(now)) {
      const claim = this.claims.get(id)
      if (claim && claim.expiresAt <= now) this.claims.delete(id)
    }
  }
}

/** Unambiguous for any tenant id and key. */
function keyOf(tenantId: string, key: string): string {
  return `${tenantId.length}:${tenantId}:${key}`
}

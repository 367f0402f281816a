/**
 * The scheduler's cache of next fire times: a sorted set (schedule id → next tick) that covers at
 * least the next minute, refilled from the store (the source of truth) by one scheduler at a time,
 * so no scheduler scans the schedules table per tick. `take` hands each due entry to exactly one
 * caller (an atomic pop of everything due). Redis for a fleet; an in-process map for the embedded
 * mode (one process per queue there).
 */
import type { RedisClient } from '../broker/redis/connection.js'
import type { QueueKeys } from '../broker/redis/keys.js'

export interface DueEntry {
  id: string
  at: number
}

export interface DueCache {
  /** Adds or moves entries. */
  put(entries: readonly DueEntry[]): Promise<void>
  remove(id: string): Promise<void>
  /** Removes and answers up to `limit` entries due at `now`, earliest first; atomic. */
  take(now: number, limit: number): Promise<DueEntry[]>
  /** Until when every schedule due by then is known to be in the cache (0: never filled). */
  horizon(): Promise<number>
  setHorizon(at: number): Promise<void>
  /** True for one caller per `ttlMs`: the right to refill from the store. */
  claimRefill(owner: string, ttlMs: number): Promise<boolean>
}

/** ZRANGEBYSCORE + ZREM in one step, so two schedulers never take the same entry. */
const TAKE = `
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
for i = 1, #due, 2 do redis.call('ZREM', KEYS[1], due[i]) end
return due`

export class RedisDueCache implements DueCache {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: QueueKeys,
  ) {}

  async put(entries: readonly DueEntry[]): Promise<void> {
    if (entries.length === 0) return
    const args: (string | number)[] = []
    for (const e of entries) args.push(e.at, e.id)
    await this.redis.zadd(this.keys.scheduleDue, ...args)
  }

  async remove(id: string): Promise<void> {
    await this.redis.zrem(this.keys.scheduleDue, id)
  }

  async take(now: number, limit: number): Promise<DueEntry[]> {
    const reply = (await this.redis.eval(TAKE, 1, this.keys.scheduleDue, now, limit)) as string[]
    const out: DueEntry[] = []
    for (let i = 0; i < reply.length; i += 2) out.push({ id: reply[i]!, at: Number(reply[i + 1]) })
    return out
  }

  async horizon(): Promise<number> {
    return Number((await this.redis.get(this.keys.scheduleHorizon)) ?? 0)
  }

  async setHorizon(at: number): Promise<void> {
    // Expires with the horizon itself: a Redis that lost the set also loses the claim of completeness.
    const ttl = Math.max(1, at - Date.now())
    await this.redis.set(this.keys.scheduleHorizon, String(at), 'PX', ttl)
  }

  async claimRefill(owner: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(this.keys.scheduleRefill, owner, 'PX', ttlMs, 'NX')) === 'OK'
  }
}

export class MemoryDueCache implements DueCache {
  private readonly due = new Map<string, number>()
  private filledUntil = 0
  private refillUntil = 0

  async put(entries: readonly DueEntry[]): Promise<void> {
    for (const e of entries) this.due.set(e.id, e.at)
  }

  async remove(id: string): Promise<void> {
    this.due.delete(id)
  }

  async take(now: number, limit: number): Promise<DueEntry[]> {
    const out: DueEntry[] = []
    for (const [id, at] of this.due) if (at <= now) out.push({ id, at })
    out.sort((a, b) => a.at - b.at)
    const taken = out.slice(0, limit)
    for (const e of taken) this.due.delete(e.id)
    return taken
  }

  async horizon(): Promise<number> {
    return this.filledUntil
  }

  async setHorizon(at: number): Promise<void> {
    this.filledUntil = at
  }

  async claimRefill(_owner: string, ttlMs: number): Promise<boolean> {
    const now = Date.now()
    if (now < this.refillUntil) return false
    this.refillUntil = now + ttlMs
    return true
  }
}

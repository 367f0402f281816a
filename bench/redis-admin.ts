/** The runner's own Redis connection: key cleanup (SCAN + UNLINK, never FLUSH*) and INFO. */
import { Redis } from 'ioredis'

export class RedisAdmin {
  readonly redis: Redis

  constructor(url: string) {
    this.redis = new Redis(url, { maxRetriesPerRequest: 3, lazyConnect: false })
  }

  /** Deletes every key matching `pattern` (one queue's keys); answers how many. */
  async deleteMatching(pattern: string): Promise<number> {
    let cursor = '0'
    let deleted = 0
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', pattern, 'COUNT', 5000)
      cursor = next
      for (let i = 0; i < keys.length; i += 1000) {
        deleted += await this.redis.unlink(...keys.slice(i, i + 1000))
      }
    } while (cursor !== '0')
    return deleted
  }

  async usedMemory(): Promise<number> {
    const info = await this.redis.info('memory')
    const m = /^used_memory:(\d+)/m.exec(info)
    if (!m) throw new Error('INFO memory has no used_memory')
    return Number(m[1])
  }

  /** Waits (up to 10 s) until UNLINKed values have been freed, so a memory delta measures only new keys. */
  async settle(): Promise<void> {
    const deadline = Date.now() + 10_000
    while (Date.now() < deadline) {
      const info = await this.redis.info('memory')
      if (Number(/^lazyfree_pending_objects:(\d+)/m.exec(info)?.[1] ?? 0) === 0) return
      await new Promise((r) => setTimeout(r, 50))
    }
  }

  async serverVersion(): Promise<string> {
    const info = await this.redis.info('server')
    return /^redis_version:(\S+)/m.exec(info)?.[1] ?? 'unknown'
  }

  async close(): Promise<void> {
    try {
      await this.redis.quit()
    } catch {
      this.redis.disconnect()
    }
  }
}

/**
 * A completion travels from Redis to PostgreSQL on the change feed; until the store has it, Redis
 * alone knows the task finished, and a Redis that loses its data runs the task again. Normally
 * that window is the feed's 100-300 ms. This test covers the case the soak found (docs/soak.md): the
 * process that read the completion's entry dies before applying it. Another process must take the
 * entry over within seconds (it waited 30 s, long enough for Redis to restart empty meanwhile and
 * the task to run a second time).
 */
import { Redis } from 'ioredis'
import { describe, expect, it } from 'vitest'
import { RedisBroker } from '../../src/broker/redis/redis-broker.js'
import { DEFAULT_RECLAIM_AFTER_MS } from '../../src/durable/store-sync.js'
import { createWorker } from '../../src/index.js'
import { durableJob, durableQueue, StoreProbe, waitFor } from '../fixtures/durable-common.js'
import { canRunPrivateServers, usePrivateServers } from '../helpers/private-servers.js'
import { uniqueName } from '../helpers/services.js'

const canRun = await canRunPrivateServers()
const TASKS = 10

describe.skipIf(!canRun)('durable: a completion read from the feed by a process that died', () => {
  const servers = usePrivateServers()

  it('reaches PostgreSQL within seconds, so a Redis emptied right after does not run the task again', async () => {
    const name = uniqueName('feed-takeover')
    const redis = servers.redis()
    const pgServer = servers.postgres()
    const probe = new StoreProbe(pgServer.url, name)
    const producer = durableQueue(name, redis.url, pgServer.url)
    const raw = new Redis(redis.url)
    const broker = new RedisBroker(name, { redis: redis.url, changeFeed: true, fenced: true })
    let queue: ReturnType<typeof durableQueue> | undefined
    try {
      await producer.ready()
      const ids: string[] = []
      for (let n = 0; n < TASKS; n++) ids.push((await producer.submit(durableJob, { n })).id)
      await producer.close() // no process reads the feed now

      // A worker process claims and completes them; its feed reader takes the entries and the
      // process dies before it applies them (it never acknowledges, nor holds them again).
      const claimed = await broker.claim('doomed', TASKS, 30_000, Date.now())
      expect(claimed.tasks.map((t) => t.id).sort()).toEqual([...ids].sort())
      const outcomes = await broker.complete(
        claimed.tasks.map((t) => ({ id: t.id, token: t.token, result: JSON.stringify({ n: -1 }) })),
        Date.now(),
      )
      expect(outcomes).toEqual(ids.map(() => 'ok'))
      const taken = (await raw.xreadgroup(
        'GROUP',
        'store',
        'doomed',
        'COUNT',
        100,
        'STREAMS',
        `tl:{${name}}:changes`,
        '>',
      )) as [string, unknown[]][] | null
      expect(taken?.[0]?.[1].length).toBeGreaterThan(0)
      raw.disconnect()
      const diedAt = Date.now()

      // A live process takes them over.
      queue = durableQueue(name, redis.url, pgServer.url)
      await queue.ready()
      await waitFor(
        async () => ((await probe.ids(['completed'])) ?? []).length === TASKS,
        15_000,
        async () => `the completions to reach the store: ${JSON.stringify(await probe.counts())}`,
        100,
      )
      const tookMs = Date.now() - diedAt
      console.log(
        `[durable-feed-takeover] completions reached the store ${tookMs} ms after their reader died`,
      )
      expect(tookMs).toBeLessThan(DEFAULT_RECLAIM_AFTER_MS + 3000)

      // Redis loses everything now: the store has the completions, so nothing runs again.
      await redis.restartEmpty()
      const ran: number[] = []
      const worker = createWorker({ queue, concurrency: 10, pollIntervalMs: 50 })
      worker.handle(durableJob, ({ n }) => {
        ran.push(n)
        return { n }
      })
      await worker.start()
      try {
        // A task submitted after the loss runs once the re-base is done: by then the restored
        // tasks (if any) are in Redis ahead of it.
        const control = await queue.submit(durableJob, { n: 1000 })
        await waitFor(
          async () => (await queue!.get(control.id))?.status === 'completed',
          15_000,
          () => 'the control task to run after the re-base',
        )
      } finally {
        await worker.close()
      }
      expect(ran).toEqual([1000])
    } finally {
      await queue?.close()
      await producer.close().catch(() => {})
      await broker.close()
      raw.disconnect()
      await probe.close()
    }
  }, 60_000)
})

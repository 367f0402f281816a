/**
 * A call in flight when Redis goes down is sent again by the client once it reconnects, to
 * whatever server answers then, still carrying the run_id the client had verified on the old one.
 * When that server came back from an older copy of the data, the copy's re-base marker names the
 * old server too, so the marker alone would let the new server judge the call on rolled-back data,
 * before any re-base: a completion from an attempt that had already lost its lease was accepted.
 * Every fenced call must be judged only by the server it was meant for (issue 14, soak lead (b)).
 */
import { describe, expect, it } from 'vitest'
import { RedisBroker } from '../../src/broker/redis/redis-broker.js'
import { durableJob, durableQueue, StoreProbe, sleep, waitFor } from '../fixtures/durable-common.js'
import { canRunPrivateServers, usePrivateServers } from '../helpers/private-servers.js'
import { uniqueName } from '../helpers/services.js'

const canRun = await canRunPrivateServers()

describe.skipIf(!canRun)('a fenced call re-sent to a Redis that came back with older data', () => {
  const servers = usePrivateServers({ redis: { persistent: true } })

  it('refuses a stale completion that reaches the rolled-back server before its re-base', async () => {
    const name = uniqueName('resend')
    const redis = servers.redis()
    const pgServer = servers.postgres()
    const probe = new StoreProbe(pgServer.url, name)
    const producer = durableQueue(name, redis.url, pgServer.url)
    // Two worker processes' brokers: the first holds an attempt that loses its lease, the second
    // runs the task again and completes it.
    const first = new RedisBroker(name, { redis: redis.url, changeFeed: true, fenced: true })
    const second = new RedisBroker(name, { redis: redis.url, changeFeed: true, fenced: true })
    let queue: ReturnType<typeof durableQueue> | undefined
    try {
      await producer.ready()
      const { id } = await producer.submit(durableJob, { n: 1 })
      const stale = (await first.claim('first', 1, 30_000, Date.now())).tasks[0]!
      expect(stale.id).toBe(id)
      // Redis as it is now, with the first attempt in flight.
      const copy = await redis.snapshot()

      // Later: the first attempt is given back (as when its lease lapses), the second runs and
      // completes it, and the store records that completion.
      expect(await first.release([{ id, token: stale.token }], Date.now())).toEqual(['ok'])
      const winner = (await second.claim('second', 1, 30_000, Date.now())).tasks[0]!
      expect(winner.token).toBeGreaterThan(stale.token)
      const won = await second.complete(
        [{ id, token: winner.token, result: JSON.stringify({ n: 1, token: winner.token }) }],
        Date.now(),
      )
      expect(won).toEqual(['ok'])
      await waitFor(
        async () => ((await probe.ids(['completed'])) ?? []).includes(id),
        10_000,
        () => 'the completion to reach the store',
      )
      // No process may re-base the next server before the re-sent call reaches it.
      await producer.close()

      // The first attempt's completion is sent while Redis hangs, and Redis goes down with it
      // unanswered; it comes back from the copy, and the client sends the call again.
      redis.pause()
      const late = first.complete(
        [{ id, token: stale.token, result: JSON.stringify({ n: 1, token: stale.token }) }],
        Date.now(),
      )
      await sleep(200)
      await redis.restartFrom(copy)
      await sleep(1500) // the client reconnects and re-sends

      // Now a process re-bases the new server, and the waiting completion is judged there.
      queue = durableQueue(name, redis.url, pgServer.url)
      await queue.ready()
      expect(await late).toEqual(['stale'])
      const row = (await probe.rows())?.find((r) => r.id === id)
      expect(row).toMatchObject({ status: 'completed', result: { token: winner.token } })
      expect(await queue.get(id)).toMatchObject({ status: 'completed', result: { token: winner.token } })
    } finally {
      redis.resume()
      await queue?.close()
      await producer.close().catch(() => {})
      await Promise.all([first.close(), second.close()])
      await probe.close()
    }
  }, 60_000)
})

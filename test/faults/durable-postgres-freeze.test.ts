/**
 * Promise 7 against a frozen PostgreSQL (issue 14 item 9): every server process SIGSTOPped, its
 * connections open, so nothing errors, nothing answers. Submits, reads and schedule changes must
 * fail with the retryable STORE_UNAVAILABLE within `postgresPool.queryTimeoutMs`, not block for as
 * long as the freeze lasts; once the server thaws the queue works again by itself, and nothing
 * acknowledged is lost.
 */
import { describe, expect, it } from 'vitest'
import { createWorker, TaskloomError, type Worker } from '../../src/index.js'
import { durableJob, durableQueue, StoreProbe, sleep, waitFor } from '../fixtures/durable-common.js'
import { canRunPrivateServers, usePrivateServers } from '../helpers/private-servers.js'
import { uniqueName } from '../helpers/services.js'

const canRun = await canRunPrivateServers()

const QUERY_TIMEOUT_MS = 1000
/** What "bounded" allows on a busy two-core box: the timeout plus scheduling slack. */
const SETTLE_BOUND_MS = QUERY_TIMEOUT_MS + 4000
/** Longer than any bound: a call still pending after this is blocked by the freeze. */
const FREEZE_MS = 12_000

interface Outcome {
  what: string
  ms: number
  error?: unknown
}

/** Runs `call` and records how long it took to settle, or that it had not after `FREEZE_MS`. */
async function timed(what: string, call: () => Promise<unknown>): Promise<Outcome> {
  const started = Date.now()
  let timer: NodeJS.Timeout | undefined
  const hung = new Promise<'hung'>((r) => {
    timer = setTimeout(() => r('hung'), FREEZE_MS)
  })
  const settled = call().then(
    () => ({ what, ms: Date.now() - started }),
    (error: unknown) => ({ what, ms: Date.now() - started, error }),
  )
  const outcome = await Promise.race([settled, hung])
  clearTimeout(timer)
  return outcome === 'hung' ? { what, ms: Infinity } : outcome
}

describe.skipIf(!canRun)('PostgreSQL frozen (SIGSTOP) under a durable queue', () => {
  const servers = usePrivateServers()

  it('fails submits, reads and schedule changes with STORE_UNAVAILABLE within queryTimeoutMs, then recovers', async () => {
    const name = uniqueName('durable-pg-freeze')
    const pgServer = servers.postgres()
    const queue = durableQueue(name, servers.redis().url, pgServer.url, {
      postgresPool: { queryTimeoutMs: QUERY_TIMEOUT_MS },
    })
    const probe = new StoreProbe(pgServer.url, name)
    let worker: Worker | undefined
    try {
      await queue.ready()
      const before = await queue.submit(durableJob, { n: -1 })
      await queue.schedules.upsert({ id: 'nightly', cron: '0 3 * * *', task: durableJob, input: { n: 0 } })

      pgServer.pause()
      let outcomes: Outcome[]
      try {
        outcomes = await Promise.all([
          ...Array.from({ length: 40 }, (_, i) =>
            timed(`submit ${i}`, () => queue.submit(durableJob, { n: i }, { idempotencyKey: `k${i}` })),
          ),
          timed('submitMany', () =>
            queue.submitMany([
              { task: durableJob, input: { n: 100 } },
              { task: durableJob, input: { n: 101 } },
            ]),
          ),
          timed('get of a task Redis does not hold', () => queue.get('no-such-task')),
          timed('list', () => queue.list()),
          timed('schedules.get', () => queue.schedules.get('nightly')),
          timed('schedules.pause', () => queue.schedules.pause('nightly')),
        ])
      } finally {
        pgServer.resume()
      }

      const blocked = outcomes.filter((o) => o.ms > SETTLE_BOUND_MS)
      expect(
        blocked.map(
          (o) => `${o.what}: ${o.ms === Infinity ? `still pending after ${FREEZE_MS} ms` : `${o.ms} ms`}`,
        ),
        'calls not settled within the bound while PostgreSQL was frozen',
      ).toEqual([])
      const wrong = outcomes.filter(
        (o) =>
          !(o.error instanceof TaskloomError && o.error.code === 'STORE_UNAVAILABLE' && o.error.retryable),
      )
      expect(
        wrong.map((o) => `${o.what}: ${o.error === undefined ? 'succeeded' : String(o.error)}`),
        'every call must fail with the retryable STORE_UNAVAILABLE while PostgreSQL is frozen',
      ).toEqual([])

      // Thawed: the same submits, retried with their keys, go through, and one task per key exists
      // (a rejected submit that PostgreSQL did commit before it froze is answered as a duplicate).
      const ids = new Map<string, string>()
      await waitFor(
        async () => {
          try {
            for (let i = 0; i < 40; i++) {
              if (ids.has(`k${i}`)) continue
              const r = await queue.submit(durableJob, { n: i }, { idempotencyKey: `k${i}` })
              ids.set(`k${i}`, r.id)
            }
            return true
          } catch (err) {
            if (err instanceof TaskloomError && err.code === 'STORE_UNAVAILABLE') return false
            throw err
          }
        },
        30_000,
        () => `${ids.size} of 40 submits went through after the thaw`,
      )
      expect(new Set(ids.values()).size).toBe(40)
      expect(await queue.schedules.get('nightly')).toMatchObject({ id: 'nightly' })

      worker = createWorker({ queue, concurrency: 10, pollIntervalMs: 50 })
      worker.handle(durableJob, async ({ n }) => ({ n }))
      await worker.start()
      const expected = new Set([before.id, ...ids.values()])
      await waitFor(
        async () => {
          const done = await probe.ids(['completed'])
          return done !== null && [...expected].every((id) => done.includes(id))
        },
        60_000,
        async () => `completed ${(await probe.ids(['completed']))?.length} of ${expected.size}`,
      )
      // One row per idempotency key, whatever the freeze left half-done.
      const perKey = await probe.query<{ key: string; n: number }>(
        `select idempotency_key as key, count(*)::int as n from taskloom.tasks
          where queue = $1 and idempotency_key is not null group by idempotency_key having count(*) > 1`,
        [name],
      )
      expect(perKey).toEqual([])
    } finally {
      pgServer.resume()
      await worker?.close({ graceMs: 0 })
      await queue.close()
      await probe.close()
      await sleep(10)
    }
  })
})

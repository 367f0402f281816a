/**
 * An acknowledged cancel is as durable as an acknowledged submit (issue 14 item 3). With PostgreSQL
 * down a cancel must not be acknowledged (it fails with the retryable STORE_UNAVAILABLE); Redis then
 * restarts empty, PostgreSQL comes back, recovery restores the unfinished rows, the failed cancels
 * are retried. No task whose cancel was acknowledged may ever run, and store and broker must agree
 * on every task's final status.
 */
import { describe, expect, it } from 'vitest'
import { createWorker, TaskloomError, type Worker } from '../../src/index.js'
import { durableJob, durableQueue, StoreProbe, sleep, waitFor } from '../fixtures/durable-common.js'
import { canRunPrivateServers, usePrivateServers } from '../helpers/private-servers.js'
import { uniqueName } from '../helpers/services.js'

const canRun = await canRunPrivateServers()

const TARGETS = 20
const CONTROLS = 5
/** Long enough that no target is due before the cancels are retried, short enough to wait out. */
const DELAY_MS = 10_000

describe.skipIf(!canRun)('durable cancel across PostgreSQL down and Redis restarted empty', () => {
  const servers = usePrivateServers()

  it('never acknowledges a cancel PostgreSQL has not recorded, and an acknowledged cancel never runs', async () => {
    const name = uniqueName('durable-cancel')
    const redis = servers.redis()
    const pgServer = servers.postgres()
    const queue = durableQueue(name, redis.url, pgServer.url, { postgresPool: { queryTimeoutMs: 2000 } })
    const probe = new StoreProbe(pgServer.url, name)
    const ran = new Set<number>()
    let worker: Worker | undefined
    try {
      await queue.ready()
      worker = createWorker({ queue, concurrency: 5, pollIntervalMs: 50, leaseMs: 3000 })
      worker.handle(durableJob, async ({ n }) => {
        ran.add(n)
        return { n }
      })
      await worker.start()
      const targets: string[] = []
      for (let n = 0; n < TARGETS; n++)
        targets.push((await queue.submit(durableJob, { n }, { delayMs: DELAY_MS })).id)
      const controls: string[] = []
      for (let n = 1000; n < 1000 + CONTROLS; n++)
        controls.push((await queue.submit(durableJob, { n }, { delayMs: DELAY_MS })).id)
      // Half the targets are cancelled while both servers are up: those must hold too.
      const acknowledged = new Set<number>()
      for (let n = 0; n < TARGETS / 2; n++) {
        await queue.cancel(targets[n]!)
        acknowledged.add(n)
      }

      await pgServer.down('immediate')
      const failures: string[] = []
      for (let n = TARGETS / 2; n < TARGETS; n++) {
        try {
          await queue.cancel(targets[n]!)
          acknowledged.add(n)
        } catch (err) {
          if (!(err instanceof TaskloomError && err.code === 'STORE_UNAVAILABLE' && err.retryable))
            failures.push(`cancel ${n}: ${String(err)}`)
        }
      }
      expect(failures, 'a cancel with PostgreSQL down fails with the retryable STORE_UNAVAILABLE').toEqual([])
      const ackedWhileDown = [...acknowledged].filter((n) => n >= TARGETS / 2)
      expect(ackedWhileDown, 'cancels acknowledged while PostgreSQL was down').toEqual([])

      // Redis loses everything (the tombstones and the feed entries of the failed cancels with it).
      await redis.restart()
      await pgServer.start()

      // The failed cancels are retried until they are acknowledged.
      for (let n = TARGETS / 2; n < TARGETS; n++) {
        await waitFor(
          async () => {
            try {
              await queue.cancel(targets[n]!)
              acknowledged.add(n)
              return true
            } catch (err) {
              if (err instanceof TaskloomError && err.retryable) return false
              // An earlier try recorded the cancel and then failed (Redis still starting): a repeat
              // is TASK_FINISHED. It counts as acknowledged, so the task must never run either.
              if (err instanceof TaskloomError && err.code === 'TASK_FINISHED') {
                acknowledged.add(n)
                return true
              }
              throw err
            }
          },
          20_000,
          () => `cancel of target ${n} never went through`,
        )
      }

      // The controls run once they are due: proof the worker would have run the targets too.
      await waitFor(
        async () => {
          const done = await probe.ids(['completed'])
          return done !== null && controls.every((id) => done.includes(id))
        },
        DELAY_MS + 30_000,
        () => `controls ran: ${[...ran].filter((n) => n >= 1000).length} of ${CONTROLS}`,
      )
      await sleep(1000)

      const ranCancelled = [...acknowledged].filter((n) => ran.has(n)).sort((a, b) => a - b)
      expect(ranCancelled, 'tasks whose cancel was acknowledged that ran anyway').toEqual([])
      const disagree: string[] = []
      const rows = new Map((await probe.rows())!.map((r) => [r.id, r.status]))
      for (const n of acknowledged) {
        const id = targets[n]!
        const live = await queue.get(id)
        if (rows.get(id) !== 'cancelled' || live?.status !== 'cancelled')
          disagree.push(`target ${n}: store ${rows.get(id)}, queue.get ${live?.status}`)
      }
      expect(disagree, 'store and broker disagree on a cancelled task').toEqual([])
    } finally {
      await worker?.close({ graceMs: 0 })
      await queue.close()
      await probe.close()
    }
  })
})

/**
 * Promise 1 against PostgreSQL going away: the server is stopped (immediate mode, like a crash) for
 * about 2 s while submitters and workers run. Submits during the outage must settle quickly (reject
 * with a retryable STORE_UNAVAILABLE, or resolve); every acknowledged task must end `completed` in the
 * store; workers keep completing queued tasks meanwhile (Redis is up); the store catches up after.
 */
import { describe, expect, it } from 'vitest'
import { createWorker, TaskloomError, type Worker } from '../../src/index.js'
import { durableJob, durableQueue, StoreProbe, sleep, waitFor } from '../fixtures/durable-common.js'
import { canRunPrivateServers, usePrivateServers } from '../helpers/private-servers.js'
import { uniqueName } from '../helpers/services.js'

const canRun = await canRunPrivateServers()

/** A submit that has not settled after this long counts as hung. */
const SUBMIT_BOUND_MS = 15_000
const DOWN_MS = 2000
const BACKLOG = 4000
const SUBMITTERS = 8

interface Attempt {
  n: number
  startedAt: number
  settledAt?: number
  id?: string
  error?: unknown
}

describe.skipIf(!canRun)('PostgreSQL restarted while durable tasks are submitted and run', () => {
  const servers = usePrivateServers()

  it('fails submits fast, loses nothing acknowledged, keeps working and catches up', async () => {
    const name = uniqueName('durable-pg-restart')
    const queue = durableQueue(name, servers.redis().url, servers.postgres().url)
    const probe = new StoreProbe(servers.postgres().url, name)
    const workers: Worker[] = []
    const t0 = Date.now()
    const at = (ms: number) => `${((ms - t0) / 1000).toFixed(2)} s`
    let stopSubmitting = false
    let submitters: Promise<void> | undefined
    try {
      await queue.ready()

      const completedAt: number[] = []
      for (let i = 0; i < 2; i++) {
        const worker = createWorker({ queue, concurrency: 10, leaseMs: 5000, pollIntervalMs: 100 })
        worker.handle(durableJob, async ({ n }) => {
          await sleep(20 + (n % 20))
          return { n }
        })
        worker.on('task:completed', () => completedAt.push(Date.now()))
        workers.push(worker)
      }

      // A backlog, acknowledged before the outage, so workers have work while PostgreSQL is down.
      const acknowledged = new Set<string>()
      for (let n = 0; n < BACKLOG; n += 500) {
        const entries = Array.from({ length: 500 }, (_, i) => ({ task: durableJob, input: { n: n + i } }))
        for (const r of await queue.submitMany(entries)) acknowledged.add(r.id)
      }
      await Promise.all(workers.map((w) => w.start()))

      // Submitters run through the outage, one submit at a time each, a few ms apart.
      const attempts: Attempt[] = []
      let next = BACKLOG
      const hung: Attempt[] = []
      const submitter = async () => {
        while (!stopSubmitting) {
          const a: Attempt = { n: next++, startedAt: Date.now() }
          attempts.push(a)
          let timer: NodeJS.Timeout | undefined
          const bound = new Promise<'hung'>((r) => {
            timer = setTimeout(() => r('hung'), SUBMIT_BOUND_MS)
          })
          const outcome = await Promise.race([
            queue.submit(durableJob, { n: a.n }).then(
              (r) => {
                a.id = r.id
                a.settledAt = Date.now()
                acknowledged.add(r.id)
              },
              (error: unknown) => {
                a.error = error
                a.settledAt = Date.now()
              },
            ),
            bound,
          ])
          clearTimeout(timer)
          if (outcome === 'hung') {
            hung.push(a)
            return
          }
          await sleep(a.error ? 50 : 10)
        }
      }
      submitters = Promise.all(Array.from({ length: SUBMITTERS }, submitter)).then(() => {})

      await sleep(1500)
      const downAt = Date.now()
      await servers.postgres().down('immediate')
      const downDone = Date.now()
      await sleep(DOWN_MS)
      const upAt = Date.now()
      await servers.postgres().start()
      const upDone = Date.now()
      await sleep(2000)
      stopSubmitting = true
      await submitters

      // Submits: none hung; each settled within the bound; rejections are retryable STORE_UNAVAILABLE.
      expect(hung.map((a) => `submit #${a.n} started at ${at(a.startedAt)}`)).toEqual([])
      const slow = attempts.filter((a) => a.settledAt! - a.startedAt > SUBMIT_BOUND_MS)
      expect(slow.length).toBe(0)
      const rejected = attempts.filter((a) => a.error !== undefined)
      const badErrors = rejected.filter(
        (a) =>
          !(a.error instanceof TaskloomError) ||
          a.error.code !== 'STORE_UNAVAILABLE' ||
          a.error.retryable !== true,
      )
      expect(
        badErrors.slice(0, 3).map((a) => {
          const e = a.error as TaskloomError
          return `${e?.name}: code=${e?.code} retryable=${e?.retryable} ${e?.message}`
        }),
      ).toEqual([])
      const duringOutage = attempts.filter((a) => a.startedAt >= downDone && a.startedAt < upAt)
      const slowest = Math.max(0, ...attempts.map((a) => a.settledAt! - a.startedAt))
      const completionsWhileDown = completedAt.filter((t) => t >= downDone && t < upAt).length
      console.info(
        `[durable-pg-restart] PostgreSQL down ${at(downAt)}-${at(upDone)} (stop took ${downDone - downAt} ms, ` +
          `start ${upDone - upAt} ms); ${attempts.length} submits, ${rejected.length} rejected, ` +
          `${duringOutage.length} started during the outage (${duringOutage.filter((a) => a.error).length} rejected), ` +
          `slowest settled in ${slowest} ms; ${completionsWhileDown} completions while down`,
      )

      // Workers kept completing queued tasks while PostgreSQL was down.
      expect(completionsWhileDown).toBeGreaterThan(0)

      // Every acknowledged task ends completed in the store (the store catches up), within 60 s.
      let missing: string[] = []
      let counts = await probe.counts()
      await waitFor(
        async () => {
          const done = await probe.ids(['completed'])
          if (!done) return false
          const set = new Set(done)
          missing = [...acknowledged].filter((id) => !set.has(id))
          counts = await probe.counts()
          return missing.length === 0
        },
        60_000,
        () =>
          `every acknowledged task to complete in the store; ${missing.length} of ${acknowledged.size} not completed ` +
          `(e.g. ${missing.slice(0, 3).join(', ')}); store: ${JSON.stringify(counts)}`,
      )

      // Rows written for submits whose reply was lost (rejected after the INSERT committed) must not be
      // stranded either: the reconciler enqueues them, so every row in the store completes.
      await waitFor(
        async () => {
          counts = await probe.counts()
          return counts !== null && counts.completed === counts.total
        },
        30_000,
        () => `every stored row to complete; store: ${JSON.stringify(counts)}`,
      )
      expect(counts!.total).toBeGreaterThanOrEqual(acknowledged.size)
      expect(counts!.total).toBeLessThanOrEqual(attempts.length + BACKLOG)

      await Promise.all(workers.map((w) => w.close()))
      expect((await queue.counts()).processing).toBe(0)
    } finally {
      stopSubmitting = true
      await servers
        .postgres()
        .start()
        .catch(() => {})
      await submitters?.catch(() => {})
      await Promise.allSettled(workers.map((w) => w.close({ graceMs: 0 })))
      await queue.close().catch(() => {})
      await probe.close()
    }
  }, 180_000)
})

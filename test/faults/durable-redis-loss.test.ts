/**
 * Promise 1 against Redis losing everything: 10,000 acknowledged tasks, two workers running, and the
 * queue's Redis restarted EMPTY once about 30% are done. Every task must end `completed` in the store,
 * exactly one row each; handlers may run twice (at-least-once), but only for tasks that had started
 * before the loss.
 */
import { describe, expect, it } from 'vitest'
import { createWorker, type Queue, type Worker } from '../../src/index.js'
import {
  debugTicker,
  durableJob,
  durableQueue,
  listAll,
  StoreProbe,
  sleep,
  waitFor,
} from '../fixtures/durable-common.js'
import { canRunPrivateServers, usePrivateServers } from '../helpers/private-servers.js'
import { uniqueName } from '../helpers/services.js'

const canRun = await canRunPrivateServers()

const TOTAL = 10_000
const RESTART_AFTER = 3_000

describe.skipIf(!canRun)('Redis restarted empty while 10,000 durable tasks run', () => {
  const servers = usePrivateServers()

  it('completes every acknowledged task, each exactly once in the store', async () => {
    const name = uniqueName('durable-redis-loss')
    const queue: Queue = durableQueue(name, servers.redis().url, servers.postgres().url)
    const probe = new StoreProbe(servers.postgres().url, name)
    const workers: Worker[] = []
    const started = Date.now()
    const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`
    let stopTicker = () => {}
    try {
      await queue.ready()

      // Handler bookkeeping. Once RESTART_AFTER handlers have finished, the gate closes: handlers that
      // start then wait, so tasks are in flight (claimed, unfinished) when Redis loses its data.
      const executions = new Map<string, number>()
      const startedBeforeLoss = new Set<string>()
      let executionsTotal = 0
      let finished = 0
      let redisLost = false
      let gate: Promise<void> | undefined
      let openGate = () => {}
      for (let i = 0; i < 2; i++) {
        const worker = createWorker({ queue, concurrency: 50, leaseMs: 5000, pollIntervalMs: 100 })
        worker.handle(durableJob, async ({ n }, ctx) => {
          executionsTotal++
          executions.set(ctx.taskId, (executions.get(ctx.taskId) ?? 0) + 1)
          if (!redisLost) startedBeforeLoss.add(ctx.taskId)
          if (gate) await gate
          await sleep(1 + (n % 5))
          finished++
          if (finished === RESTART_AFTER && !gate) gate = new Promise<void>((r) => (openGate = r))
          return { n }
        })
        workers.push(worker)
      }

      // Submit everything first (mixed: batches of 250 through submitMany, and single submits), with
      // the workers already running; each acknowledged id must be completed at the end.
      const acknowledged = new Set<string>()
      stopTicker = debugTicker(
        async () =>
          `executions ${executionsTotal}, finished ${finished}, distinct ${executions.size}; ` +
          `store ${JSON.stringify(await probe.counts())}; redis ${JSON.stringify(await queue.counts().catch((e) => e.message))}`,
      )
      await Promise.all(workers.map((w) => w.start()))
      let n = 0
      while (n < TOTAL) {
        if ((n / 250) % 2 === 0) {
          const entries = Array.from({ length: 250 }, (_, i) => ({ task: durableJob, input: { n: n + i } }))
          for (const r of await queue.submitMany(entries)) acknowledged.add(r.id)
          n += 250
        } else {
          const singles = Array.from({ length: 250 }, (_, i) => queue.submit(durableJob, { n: n + i }))
          for (const r of await Promise.all(singles)) acknowledged.add(r.id)
          n += 250
        }
      }
      expect(acknowledged.size).toBe(TOTAL)
      const submittedAt = elapsed()

      await waitFor(
        async () => gate !== undefined,
        60_000,
        () => `${RESTART_AFTER} handlers to finish (finished ${finished})`,
        20,
      )
      await sleep(300) // let the workers fill their slots with tasks that now wait at the gate
      const finishedAtLoss = finished
      const countsAtLoss = await probe.counts()
      redisLost = true
      await servers.redis().restart()
      const lostAt = elapsed()
      openGate()

      // Bounded: every task completed in the store within 120 s of the loss.
      let counts = await probe.counts()
      await waitFor(
        async () => {
          counts = await probe.counts()
          return counts?.completed === TOTAL
        },
        120_000,
        async () =>
          `every task to complete in the store; store: ${JSON.stringify(counts)} ` +
          `(at the loss: ${JSON.stringify(countsAtLoss)}), handlers finished ${finished}, ` +
          `executions ${executionsTotal}, distinct tasks run ${executions.size}; ` +
          `redis: ${JSON.stringify(await queue.counts().catch((e: Error) => e.message))}`,
        250,
        { ms: 30_000, progress: () => `${JSON.stringify(counts)} ${executionsTotal}` },
      )
      const doneAt = elapsed()

      await Promise.all(workers.map((w) => w.close()))
      const duplicates = [...executions].filter(([, k]) => k > 1)
      console.info(
        `[durable-redis-loss] submitted at ${submittedAt}; Redis lost at ${lostAt} with ${finishedAtLoss} ` +
          `handlers finished (store then: ${JSON.stringify(countsAtLoss)}); all completed at ${doneAt}; ` +
          `${executionsTotal} handler executions for ${TOTAL} tasks, ${duplicates.length} tasks ran more than once ` +
          `(max ${Math.max(0, ...duplicates.map(([, k]) => k))} times)`,
      )

      // The store: one completed row per acknowledged task, and nothing else.
      const rows = (await probe.rows())!
      expect(rows.length).toBe(TOTAL)
      const ids = new Set(rows.map((r) => r.id))
      expect(ids.size).toBe(TOTAL)
      expect([...acknowledged].filter((id) => !ids.has(id))).toEqual([])
      const notCompleted = rows.filter((r) => r.status !== 'completed' || !r.completedAt)
      expect(notCompleted.slice(0, 5)).toEqual([])
      const wrongResult = rows.filter((r) => typeof (r.result as { n?: unknown })?.n !== 'number')
      expect(wrongResult.slice(0, 5)).toEqual([])

      // Through the API: list pages every completed task once.
      const listed = await listAll(queue, 'completed')
      expect(listed.total).toBe(TOTAL)
      expect(listed.ids.length).toBe(TOTAL)
      expect(new Set(listed.ids).size).toBe(TOTAL)
      const sample = [...acknowledged].slice(0, 20)
      for (const id of sample) expect((await queue.get(id))?.status).toBe('completed')

      // At-least-once: every task ran; a second run only for tasks that had started before the loss.
      expect(executions.size).toBe(TOTAL)
      const rerunWithoutLoss = duplicates.filter(([id]) => !startedBeforeLoss.has(id))
      expect(rerunWithoutLoss.slice(0, 5)).toEqual([])
      expect(executionsTotal).toBeGreaterThanOrEqual(TOTAL)

      const live = await queue.counts()
      expect(live.processing).toBe(0)
    } finally {
      stopTicker()
      await Promise.allSettled(workers.map((w) => w.close({ graceMs: 0 })))
      await queue.close().catch(() => {})
      await probe.close()
    }
  }, 180_000)
})

/**
 * Promise 1 and 2 through a Redis failover: producers submit durable tasks and two workers run them
 * while the queue's Redis primary is SIGKILLed and a replica takes over (a Cluster master's replica,
 * or a Sentinel-promoted one). The same clients must follow the new primary without a restart,
 * every acknowledged task must end `completed` in the store with exactly one row, and a handler
 * may run twice only for a task the old primary had handed out (replication is asynchronous: the
 * replica may have missed its claim or completion; the store's re-base hands it out again). No
 * server serves the queue between the kill and the promotion, so a handler that starts before the
 * promotion ran a claim of the old primary's (its answer may still have been on the wire).
 */
import { expect } from 'vitest'
import type { RedisInput } from '../../src/broker/redis/connection.js'
import { createWorker, TaskloomError, type Worker } from '../../src/index.js'
import {
  debugTicker,
  durableJob,
  durableQueue,
  StoreProbe,
  sleep,
  waitFor,
} from '../fixtures/durable-common.js'
import { uniqueName } from '../helpers/services.js'

export interface FailoverScenario {
  label: string
  redis: RedisInput
  postgresUrl: string
  /** Kills the primary that serves `queueName` and waits until a replica took over. */
  killPrimary(queueName: string): Promise<void>
  total?: number
}

export async function runFailover(s: FailoverScenario): Promise<void> {
  const total = s.total ?? 2000
  const name = uniqueName(`failover-${s.label}`)
  const queue = durableQueue(name, s.redis, s.postgresUrl)
  const probe = new StoreProbe(s.postgresUrl, name)
  const workers: Worker[] = []
  let stopTicker = () => {}
  try {
    await queue.ready()
    const executions = new Map<string, number>()
    const startedBeforePromotion = new Set<string>()
    let promoted = false
    for (let i = 0; i < 2; i++) {
      const worker = createWorker({ queue, concurrency: 20, leaseMs: 5000, pollIntervalMs: 100 })
      worker.handle(durableJob, async ({ n }, ctx) => {
        executions.set(ctx.taskId, (executions.get(ctx.taskId) ?? 0) + 1)
        if (!promoted) startedBeforePromotion.add(ctx.taskId)
        await sleep(1 + (n % 5))
        return { n }
      })
      workers.push(worker)
    }
    await Promise.all(workers.map((w) => w.start()))

    // Producers: 20 submits at a time, until `total` are acknowledged; a submit refused during the
    // failover (the retryable BROKER_UNAVAILABLE or STORE_UNAVAILABLE) is simply tried again.
    const acknowledged = new Set<string>()
    let refused = 0
    const produce = async () => {
      let n = 0
      while (acknowledged.size < total) {
        const batch = Array.from({ length: 20 }, () => queue.submit(durableJob, { n: n++ }))
        for (const r of await Promise.allSettled(batch)) {
          if (r.status === 'fulfilled') acknowledged.add(r.value.id)
          else if (r.reason instanceof TaskloomError && r.reason.retryable) refused++
          else throw r.reason
        }
      }
    }
    let phase = 'submitting'
    stopTicker = debugTicker(
      async () =>
        `${phase}: acknowledged ${acknowledged.size}, refused ${refused}, executions ${executions.size}; ` +
        `store ${JSON.stringify(await probe.counts())}; redis ${JSON.stringify(await queue.counts().catch((e: Error) => e.message))}`,
    )
    const producing = produce()
    await waitFor(
      async () => acknowledged.size >= total / 4,
      60_000,
      () => 'a quarter of the submits',
    )
    const killedAt = Date.now()
    phase = 'failing over'
    await s.killPrimary(name)
    promoted = true
    phase = 'promoted'
    const failoverMs = Date.now() - killedAt
    await producing

    let counts = await probe.counts()
    await waitFor(
      async () => {
        counts = await probe.counts()
        return counts?.completed === total
      },
      90_000,
      async () =>
        `every task to complete in the store; store ${JSON.stringify(counts)}, ` +
        `redis ${JSON.stringify(await queue.counts().catch((e: Error) => e.message))}`,
    )
    await Promise.all(workers.map((w) => w.close()))
    const reruns = [...executions].filter(([, k]) => k > 1)
    console.info(
      `[failover ${s.label}] primary replaced in ${failoverMs} ms; ${refused} submits refused meanwhile ` +
        `(and retried); ${total} tasks completed; ${reruns.length} ran twice (all handed out by the old primary)`,
    )

    const rows = (await probe.rows())!
    expect(rows.length).toBe(total)
    const ids = new Set(rows.map((r) => r.id))
    expect([...acknowledged].filter((id) => !ids.has(id))).toEqual([])
    expect(rows.filter((r) => r.status !== 'completed').slice(0, 5)).toEqual([])
    expect(rows.filter((r) => typeof (r.result as { n?: unknown })?.n !== 'number').slice(0, 5)).toEqual([])
    expect(executions.size).toBe(total)
    expect(reruns.filter(([id]) => !startedBeforePromotion.has(id)).slice(0, 5)).toEqual([])
    expect((await queue.counts()).processing).toBe(0)
  } finally {
    stopTicker()
    await Promise.allSettled(workers.map((w) => w.close({ graceMs: 0 })))
    await queue.close().catch(() => {})
    await probe.close()
  }
}

/**
 * Promises 1 and 2 against a Redis that comes back with OLDER data or none (issue 14 items 1, 2, 4,
 * 5, 8): a private redis-server with an append-only file is copied aside and later restarted from
 * that copy (a power loss with `everysec`, a restore from an older AOF/RDB file, a failover to a
 * replica that missed writes all look like this to taskloom), or restarted empty. Each case checks
 * what the store already knew is not undone: no completed, cancelled or dead task runs again, tasks
 * in flight run again and their old holders cannot complete them, fencing tokens (of tasks and
 * locks) only grow, the dead-letter queue comes back, and `get()` never shows a status going back.
 */
import { Redis } from 'ioredis'
import { afterEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { RedisBroker } from '../../src/broker/redis/redis-broker.js'
import { RESTORE_LEASE_MS } from '../../src/durable/recovery.js'
import { createWorker, defineTask, NonRetryableError, type Queue, type Worker } from '../../src/index.js'
import { durableQueue, StoreProbe, sleep, waitFor } from '../fixtures/durable-common.js'
import { canRunPrivateServers, usePrivateServers } from '../helpers/private-servers.js'
import { uniqueName } from '../helpers/services.js'

const canRun = await canRunPrivateServers()

const KINDS = ['ok', 'dead', 'hold', 'retry', 'cancel'] as const
type Kind = (typeof KINDS)[number]
const rebaseJob = defineTask({
  name: 'rebase-job',
  input: z.object({ n: z.number().int(), kind: z.enum(KINDS) }),
  defaults: { maxRetries: 5 },
})
const PER_KIND = 10
const TERMINAL = new Set(['completed', 'failed', 'cancelled'])

describe.skipIf(!canRun)('Redis that comes back with older data, or none', () => {
  const servers = usePrivateServers({ redis: { persistent: true } })
  const opened: { queue: Queue; workers: Worker[]; probe?: StoreProbe }[] = []
  afterEach(async () => {
    for (const { queue, workers, probe } of opened.splice(0)) {
      await Promise.allSettled(workers.map((w) => w.close({ graceMs: 0 })))
      await queue.close().catch(() => {})
      await probe?.close()
    }
  })
  function open(name: string, extra: Parameters<typeof durableQueue>[3] = {}) {
    const queue = durableQueue(name, servers.redis().url, servers.postgres().url, extra)
    const probe = new StoreProbe(servers.postgres().url, name)
    const entry = { queue, workers: [] as Worker[], probe }
    opened.push(entry)
    return entry
  }

  it('undoes nothing the store knew when Redis restarts from an older AOF while tasks are claimed, completed, cancelled and failing', async () => {
    const name = uniqueName('rebase-rollback')
    const { queue, workers, probe } = open(name)
    await queue.ready()

    const ids = new Map<Kind, string[]>(KINDS.map((k) => [k, []]))
    const kindOf = new Map<string, Kind>()
    for (const kind of KINDS) {
      for (let n = 0; n < PER_KIND; n++) {
        const { id } = await queue.submit(rebaseJob, { n, kind })
        ids.get(kind)!.push(id)
        kindOf.set(id, kind)
      }
    }
    // Redis as it is now: every task queued. Everything below happens after this point.
    const snapshot = await servers.redis().snapshot()
    for (const id of ids.get('cancel')!) await queue.cancel(id)

    const runs = new Map<string, number>()
    const claims: { token: number; at: number }[] = []
    let restarted = 0
    let openGate = () => {}
    const gate = new Promise<void>((r) => (openGate = r))
    const worker = createWorker({
      queue,
      concurrency: 60,
      leaseMs: 30_000,
      pollIntervalMs: 100,
      backoff: { baseMs: 2000, jitter: 0 },
      breakers: false, // failures here are on purpose: no breaker may defer the other tasks
    })
    worker.handle(rebaseJob, async ({ kind }, ctx) => {
      const run = (runs.get(ctx.taskId) ?? 0) + 1
      runs.set(ctx.taskId, run)
      claims.push({ token: ctx.fencingToken, at: Date.now() })
      if (kind === 'dead') throw new NonRetryableError('dead on purpose')
      if (kind === 'retry' && ctx.attempt === 1) throw new Error('first attempt fails')
      if (kind === 'hold' && run === 1) await gate
      return { run }
    })
    workers.push(worker)
    await worker.start()

    // The store learns of it all: completed, dead, cancelled, in flight, and waiting to retry.
    const settledBefore = async () => {
      const rows = (await probe!.rows()) ?? []
      const by = (k: Kind, status: string, attempt?: number) =>
        ids.get(k)!.every((id) => {
          const r = rows.find((x) => x.id === id)
          return r?.status === status && (attempt === undefined || r.attempt === attempt)
        })
      return (
        by('ok', 'completed') &&
        by('dead', 'failed') &&
        by('cancel', 'cancelled') &&
        by('hold', 'processing', 1) &&
        by('retry', 'pending', 1)
      )
    }
    await waitFor(settledBefore, 20_000, () => 'the store to see every change before the rollback')
    const maxTokenBefore = Math.max(...claims.map((c) => c.token))

    // Readers of finished tasks, all through the rollback: a status may never go back.
    const finished = [...ids.get('ok')!, ...ids.get('dead')!, ...ids.get('cancel')!]
    const backwards: string[] = []
    let reading = true
    const reader = (async () => {
      while (reading) {
        for (const id of finished) {
          const t = await queue.get(id).catch(() => undefined)
          if (t && !TERMINAL.has(t.status)) backwards.push(`${kindOf.get(id)} ${id} read as ${t.status}`)
        }
        await sleep(20)
      }
    })()

    restarted = Date.now()
    await servers.redis().restartFrom(snapshot)
    await sleep(300)
    openGate() // the old holders of the 'hold' tasks finish now: their completions must be refused

    await waitFor(
      async () => {
        const rows = (await probe!.rows()) ?? []
        return (
          rows.length === KINDS.length * PER_KIND &&
          rows.every((r) => TERMINAL.has(r.status)) &&
          ids.get('hold')!.every((id) => rows.find((r) => r.id === id)?.status === 'completed') &&
          ids.get('retry')!.every((id) => rows.find((r) => r.id === id)?.status === 'completed')
        )
      },
      30_000,
      () => 'every task to finish after the rollback',
    )
    reading = false
    await reader

    const rows = (await probe!.rows())!
    const row = (id: string) => rows.find((r) => r.id === id)!
    for (const id of ids.get('ok')!) {
      expect(row(id).status).toBe('completed')
      expect(runs.get(id), `ok task ${id} ran again after the rollback`).toBe(1)
    }
    for (const id of ids.get('cancel')!) {
      expect(row(id).status).toBe('cancelled')
      expect(runs.get(id) ?? 0, `cancelled task ${id} ran`).toBe(0)
    }
    for (const id of ids.get('dead')!) {
      expect(row(id).status).toBe('failed')
      expect(runs.get(id)).toBe(1)
    }
    for (const id of ids.get('hold')!) {
      // The first run's holder could not complete it: the stored result is the second run's.
      expect(row(id)).toMatchObject({ status: 'completed', result: { run: 2 } })
    }
    for (const id of ids.get('retry')!)
      expect(row(id)).toMatchObject({ status: 'completed', result: { run: 2 } })

    // The dead-letter queue is what the store says it is.
    const dlq = await queue.dlq.list({ limit: 100 })
    expect(new Set(dlq.tasks.map((t) => t.id))).toEqual(new Set(ids.get('dead')))
    expect((await queue.counts()).dead).toBe(PER_KIND)

    // Tokens of claims after the rollback are above every token issued before it.
    const after = claims.filter((c) => c.at >= restarted)
    expect(after.length).toBeGreaterThanOrEqual(2 * PER_KIND)
    expect(Math.min(...after.map((c) => c.token))).toBeGreaterThan(maxTokenBefore)
    expect(new Set(claims.map((c) => c.token)).size).toBe(claims.length)
    expect(backwards.slice(0, 5)).toEqual([])
  }, 90_000)

  it('issues strictly increasing, unique fencing tokens across two empty restarts and a rollback', async () => {
    const name = uniqueName('rebase-tokens')
    // The default epoch check interval (5 s): claims right after a loss must wait for the re-base,
    // not take tokens from a counter that started again at 1.
    const { queue, workers } = open(name, { recovery: { intervalMs: 5000 } })
    await queue.ready()
    const tokens: number[] = []
    const worker = createWorker({ queue, concurrency: 1, batchSize: 1, pollIntervalMs: 50 })
    worker.handle(rebaseJob, (_input, ctx) => {
      tokens.push(ctx.fencingToken)
      return null
    })
    workers.push(worker)
    await worker.start()
    const wave = async (size: number) => {
      const ids = await Promise.all(
        Array.from({ length: size }, (_, n) => queue.submit(rebaseJob, { n, kind: 'ok' }).then((r) => r.id)),
      )
      await waitFor(
        async () =>
          (await Promise.all(ids.map((id) => queue.get(id)))).every((t) => t?.status === 'completed'),
        30_000,
        () => 'a wave of tasks to complete',
      )
    }
    await wave(20)
    const snapshot = await servers.redis().snapshot()
    await wave(20)
    await servers.redis().restartEmpty()
    await wave(20)
    await servers.redis().restartEmpty()
    await wave(20)
    await servers.redis().restartFrom(snapshot) // back to after the first wave: the counter rewinds
    await wave(20)
    expect(tokens.length).toBeGreaterThanOrEqual(100)
    for (let i = 1; i < tokens.length; i++) {
      expect(tokens[i], `token ${i} (${tokens[i]}) after ${tokens[i - 1]}`).toBeGreaterThan(tokens[i - 1]!)
    }
  }, 90_000)

  it('brings the dead-letter queue and delayed tasks back after an empty restart, and retries a stored dead task either way', async () => {
    const name = uniqueName('rebase-dlq')
    const { queue, workers } = open(name)
    await queue.ready()
    const ran: string[] = []
    const worker = createWorker({ queue, concurrency: 10, pollIntervalMs: 50, breakers: false })
    worker.handle(rebaseJob, ({ kind }, ctx) => {
      // Dead on its first run; a DLQ retry (attempts start again at 1) then succeeds.
      const first = !ran.includes(ctx.taskId)
      ran.push(ctx.taskId)
      if (kind === 'dead' && first) throw new NonRetryableError('dead on purpose')
      return null
    })
    workers.push(worker)
    await worker.start()
    const dead = await Promise.all(
      [0, 1, 2, 3].map((n) => queue.submit(rebaseJob, { n, kind: 'dead' }).then((r) => r.id)),
    )
    await waitFor(
      async () => (await queue.dlq.list()).total === 4,
      10_000,
      () => 'four dead tasks',
    )
    const before = (await queue.dlq.list()).tasks.map((t) => t.id)
    const delayed = await queue.submit(rebaseJob, { n: 9, kind: 'ok' }, { delayMs: 3000 })

    await servers.redis().restartEmpty()
    // At once, whether or not the re-base has reached it: the store has it dead, so it is retried.
    await queue.dlq.retry(dead[0]!)
    await waitFor(
      async () => (await queue.get(dead[0]!))?.status === 'completed',
      10_000,
      () => 'the retried task',
    )
    await waitFor(
      async () => (await queue.dlq.list()).total === 3,
      10_000,
      () => 'the DLQ to come back',
    )
    expect(new Set((await queue.dlq.list()).tasks.map((t) => t.id))).toEqual(
      new Set(before.filter((id) => id !== dead[0])),
    )
    expect((await queue.counts()).dead).toBe(3)
    await queue.dlq.retry(dead[1]!)
    await waitFor(
      async () => (await queue.get(dead[1]!))?.status === 'completed',
      10_000,
      () => 'a DLQ retry after the restore',
    )
    await waitFor(
      async () => (await queue.get(delayed.id))?.status === 'completed',
      15_000,
      () => 'the delayed task',
    )
    expect(ran.filter((id) => id === delayed.id)).toHaveLength(1)
  }, 60_000)

  it('keeps lock tokens growing across a Redis loss, with no key left per lock name', async () => {
    const name = uniqueName('rebase-locks')
    const { queue } = open(name)
    await queue.ready()
    const tokens: number[] = []
    for (let i = 0; i < 200; i++) {
      const lock = await queue.lock(`customer:${i}`, { ttlMs: 5000 })
      tokens.push(lock.fencingToken)
      await lock.release()
    }
    const redis = new Redis(servers.redis().url)
    redis.on('error', () => {}) // it reconnects after the restart below
    try {
      const keys = await redis.keys(`tl:{${name}}:lock*`)
      expect(keys).toEqual([])
      await servers.redis().restartEmpty()
      for (let i = 0; i < 5; i++) {
        const lock = await queue.lock(`customer:${i}`, { ttlMs: 5000, waitMs: 5000 })
        tokens.push(lock.fencingToken)
        await lock.release()
      }
      for (let i = 1; i < tokens.length; i++) expect(tokens[i]).toBeGreaterThan(tokens[i - 1]!)
      expect(await redis.keys(`tl:{${name}}:lock*`)).toEqual([])
    } finally {
      redis.disconnect()
    }
  }, 60_000)

  it('never shows a completion that Redis then loses: get() reads completed only once the store has it', async () => {
    const name = uniqueName('rebase-reads')
    const { queue, workers, probe } = open(name)
    await queue.ready()
    const runs = new Map<string, number>()
    const worker = createWorker({ queue, concurrency: 10, pollIntervalMs: 50 })
    worker.handle(rebaseJob, (_input, ctx) => {
      const run = (runs.get(ctx.taskId) ?? 0) + 1
      runs.set(ctx.taskId, run)
      return { run }
    })
    workers.push(worker)
    const ids = await Promise.all(
      Array.from({ length: 10 }, (_, n) => queue.submit(rebaseJob, { n, kind: 'ok' }).then((r) => r.id)),
    )
    // PostgreSQL goes first: the completions below reach Redis but not the store (the feed waits).
    await servers.postgres().down('immediate')
    const seen = new Map<string, string[]>(ids.map((id) => [id, []]))
    let reading = true
    const reader = (async () => {
      while (reading) {
        for (const id of ids) {
          const t = await queue.get(id).catch(() => undefined)
          const trail = seen.get(id)!
          if (t && trail.at(-1) !== t.status) trail.push(t.status)
        }
        await sleep(25)
      }
    })()
    await worker.start()
    await waitFor(
      async () => runs.size === ids.length,
      10_000,
      () => 'every task to run once',
    )
    await sleep(500)
    await servers.redis().restartEmpty() // the completions are lost with Redis
    await servers.postgres().start()
    await waitFor(
      async () => ((await probe!.ids(['completed'])) ?? []).length === ids.length,
      20_000,
      () => 'every task to complete in the store',
    )
    await waitFor(
      async () => (await Promise.all(ids.map((id) => queue.get(id)))).every((t) => t?.status === 'completed'),
      5000,
      () => 'reads to show completed',
    )
    reading = false
    await reader
    for (const [id, trail] of seen) {
      const first = trail.findIndex((s) => TERMINAL.has(s))
      expect(first === -1 ? [] : trail.slice(first), `statuses read for ${id}: ${trail.join(' → ')}`).toEqual(
        first === -1 ? [] : ['completed'],
      )
    }
    // They ran again (at-least-once): the completions of the first runs never reached the store.
    expect([...runs.values()].every((n) => n === 2)).toBe(true)
  }, 60_000)

  it('fails a read of a finished task while PostgreSQL is down instead of showing it processing again', async () => {
    const name = uniqueName('rebase-read-down')
    const { queue, workers, probe } = open(name)
    await queue.ready()
    const worker = createWorker({ queue, concurrency: 2, pollIntervalMs: 50 })
    worker.handle(rebaseJob, () => ({ ok: true }))
    workers.push(worker)
    await worker.start()
    const { id } = await queue.submit(rebaseJob, { n: 1, kind: 'ok' })
    await waitFor(
      async () => ((await probe!.ids(['completed'])) ?? []).includes(id),
      10_000,
      () => 'the task to complete in the store',
    )
    expect((await queue.get(id))?.status).toBe('completed')
    await servers.postgres().down('immediate')
    // Redis still says completed, but whether the store has it cannot be known: a retryable error,
    // never 'processing', which a reader that saw 'completed' would take for a step back.
    await expect(queue.get(id)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE', retryable: true })
    await servers.postgres().start()
    await waitFor(
      async () => (await queue.get(id).catch(() => null))?.status === 'completed',
      20_000,
      () => 'the read to answer completed again',
    )
  }, 60_000)

  it('resumes a re-base whose process died as soon as its 10 s lease lapses', async () => {
    const name = uniqueName('rebase-interrupted')
    // The default check interval: the gap measured is what production would see.
    const { queue, workers, probe } = open(name, { recovery: { intervalMs: 5000 } })
    await queue.ready()
    const ids = await Promise.all(
      Array.from({ length: 20 }, (_, n) => queue.submit(rebaseJob, { n, kind: 'ok' }).then((r) => r.id)),
    )
    await servers.redis().restartEmpty()
    // Another process takes the re-base and dies at once (it never renews its lease).
    const dead = new RedisBroker(name, { redis: servers.redis().url, changeFeed: true, fenced: true })
    const grant = await dead.ensureEpoch(Date.now(), RESTORE_LEASE_MS)
    await dead.close()
    expect(grant).toMatchObject({ created: true, cause: 'missing' })
    const diedAt = Date.now()
    const worker = createWorker({ queue, concurrency: 10, pollIntervalMs: 50 })
    worker.handle(rebaseJob, () => null)
    workers.push(worker)
    await worker.start()
    await waitFor(
      async () => ((await probe!.ids(['completed'])) ?? []).length === ids.length,
      RESTORE_LEASE_MS + 10_000,
      () => "the tasks to run after the dead re-baser's lease",
    )
    const gapMs = Date.now() - diedAt
    console.log(`[durable-rebase] interrupted re-base: tasks ran again ${gapMs} ms after the re-baser died`)
    // Resumed by the first refused claim after the lease lapsed, not by the 5 s timer.
    expect(gapMs).toBeLessThan(RESTORE_LEASE_MS + 3000)
  }, 60_000)

  it('restores everything once PostgreSQL is back when Redis was emptied while it was down', async () => {
    const name = uniqueName('rebase-pg-down')
    const { queue, workers, probe } = open(name)
    await queue.ready()
    const claims: { id: string; token: number }[] = []
    let openGate = () => {}
    const gate = new Promise<void>((r) => (openGate = r))
    const worker = createWorker({ queue, concurrency: 20, pollIntervalMs: 50, leaseMs: 30_000 })
    worker.handle(rebaseJob, async (_input, ctx) => {
      const first = !claims.some((c) => c.id === ctx.taskId)
      claims.push({ id: ctx.taskId, token: ctx.fencingToken })
      if (first) await gate // in flight when both servers go
      return null
    })
    workers.push(worker)
    await worker.start()
    const ids = await Promise.all(
      Array.from({ length: 50 }, (_, n) => queue.submit(rebaseJob, { n, kind: 'ok' }).then((r) => r.id)),
    )
    // 20 in flight (the store has them processing, confirmed), 30 waiting.
    await waitFor(
      async () => ((await probe!.ids(['processing'])) ?? []).length === 20,
      10_000,
      () => 'twenty tasks in flight',
    )
    const maxBefore = Math.max(...claims.map((c) => c.token))
    await servers.postgres().down('immediate')
    await servers.redis().restartEmpty()
    openGate() // their holders finish now, against a Redis that has lost them
    await sleep(2000)
    // Nothing is claimed from a Redis that is not re-based, and it cannot be re-based without the store.
    expect(claims).toHaveLength(20)
    await servers.postgres().start()
    await waitFor(
      async () => ((await probe!.ids(['completed'])) ?? []).length === ids.length,
      20_000,
      () => 'every task to complete once PostgreSQL is back',
    )
    const after = claims.slice(20)
    expect(after.length).toBeGreaterThanOrEqual(ids.length)
    expect(Math.min(...after.map((c) => c.token))).toBeGreaterThan(maxBefore)
    expect(new Set(claims.map((c) => c.token)).size).toBe(claims.length)
  }, 60_000)
})

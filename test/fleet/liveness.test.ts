/**
 * Worker liveness (issue 16 item 13): live while heartbeats and lease renewals go through and the
 * event loop runs; dead (the HTTP handler answers 503) once one of them has failed for longer than
 * the threshold; live again when they recover.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { judgeLiveness } from '../../src/fleet/liveness.js'
import { createQueue, defineTask, type LivenessReport, livenessHandler, type Queue } from '../../src/index.js'
import { silent, sleep, trackWorker, until } from '../helpers/backends.js'
import { type PrivateRedis, startPrivateRedis } from '../helpers/private-redis.js'
import { hasRedis, uniqueName } from '../helpers/services.js'

describe('judgeLiveness', () => {
  const base = {
    workerId: 'w',
    state: 'running' as const,
    heartbeatMs: 1000,
    lastHeartbeatAt: 10_000,
    lastRenewalAt: 10_000,
    blockedMs: 0,
  }
  it('is live within the threshold and dead past it, naming the failing check', () => {
    expect(judgeLiveness(base, { thresholdMs: 5000 }, 15_000).live).toBe(true)
    const late = judgeLiveness(base, { thresholdMs: 5000 }, 15_001)
    expect(late.live).toBe(false)
    expect(late.checks.heartbeat).toEqual({ ok: false, ms: 5001 })
    const renewals = judgeLiveness({ ...base, lastHeartbeatAt: 15_000 }, { thresholdMs: 5000 }, 16_000)
    expect(renewals).toMatchObject({
      live: false,
      checks: { heartbeat: { ok: true }, leaseRenewals: { ok: false } },
    })
    const blocked = judgeLiveness({ ...base, blockedMs: 6000 }, { thresholdMs: 5000 }, 10_000)
    expect(blocked).toMatchObject({ live: false, checks: { eventLoop: { ok: false, ms: 6000 } } })
  })

  it('defaults to 60 s or three heartbeats; a worker not started yet is live, a closed one is not', () => {
    expect(judgeLiveness(base, {}, 10_000).thresholdMs).toBe(60_000)
    expect(judgeLiveness({ ...base, heartbeatMs: 30_000 }, {}, 10_000).thresholdMs).toBe(90_000)
    expect(judgeLiveness({ ...base, state: 'idle' }, { thresholdMs: 1 }, 99_999).live).toBe(true)
    expect(judgeLiveness({ ...base, state: 'closed' }, {}, 10_000).live).toBe(false)
    expect(() => judgeLiveness(base, { thresholdMs: 0 })).toThrow(/thresholdMs/)
  })
})

const canRun = await hasRedis()

describe.skipIf(!canRun)('liveness of a real worker whose Redis freezes', () => {
  let redis: PrivateRedis
  let queue: Queue
  let server: Server
  let url: string
  beforeAll(async () => {
    redis = await startPrivateRedis()
    queue = createQueue({ name: uniqueName('live'), redis: redis.url, brokerTimeoutMs: 200, logger: silent })
  })
  afterAll(async () => {
    server?.close()
    await queue.close()
    await redis.stop()
  })

  it('answers 200, then 503 past the threshold of failed beats and renewals, then 200 again', async () => {
    const slow = defineTask({ name: 'slow', input: z.object({}) })
    let release!: () => void
    const held = new Promise<void>((resolve) => {
      release = resolve
    })
    const worker = trackWorker({ queue, heartbeatMs: 50, leaseMs: 900, logger: silent }).handle(
      slow,
      () => held,
    )
    server = createServer(livenessHandler(worker, { thresholdMs: 1500 }))
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/livez`
    const probe = async () => {
      const res = await fetch(url)
      return { status: res.status, body: (await res.json()) as { status: string; workers: LivenessReport[] } }
    }
    await worker.start()
    await queue.submit(slow, {})
    await until(() => worker.stats().inFlight === 1, 5000, 'the task to run')
    expect((await probe()).status).toBe(200)

    redis.pause()
    try {
      await sleep(300)
      expect((await probe()).status).toBe(200) // failing, but not for long yet
      const dead = await until(
        async () => {
          const p = await probe()
          return p.status === 503 && p.body.workers[0]?.checks.heartbeat.ok === false ? p : null
        },
        5000,
        'the probe to fail',
      )
      expect(dead.body.status).toBe('dead')
      expect(dead.body.workers[0]).toMatchObject({
        live: false,
        workerId: worker.id,
        checks: { heartbeat: { ok: false }, leaseRenewals: { ok: false }, eventLoop: { ok: true } },
      })
    } finally {
      redis.resume()
    }
    await until(async () => (await probe()).status === 200, 10_000, 'the probe to pass again')
    release()
    await worker.close()
    expect((await probe()).status).toBe(503) // a closed worker is not alive
  })

  it('fails while the event loop was blocked for longer than the threshold', async () => {
    const worker = trackWorker({ queue, heartbeatMs: 1000, logger: silent })
    await worker.start()
    expect(worker.liveness({ thresholdMs: 200 }).live).toBe(true)
    const until = Date.now() + 400
    while (Date.now() < until) {} // a handler blocking the loop
    await sleep(150) // the watch's next tick measures the block
    const report = worker.liveness({ thresholdMs: 200 })
    expect(report.live).toBe(false)
    expect(report.checks.eventLoop.ok).toBe(false)
    expect(report.checks.eventLoop.ms).toBeGreaterThanOrEqual(200)
    await worker.close()
  })
})

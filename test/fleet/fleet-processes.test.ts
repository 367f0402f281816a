/**
 * The fleet across processes: a second worker process refusing tasks once the first opened the
 * breaker, and a SIGKILLed worker whose leases are reclaimed from its missed heartbeats, well
 * before the lease would expire.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { defineTask } from '../../src/index.js'
import { waitForTask } from '../../src/testing.js'
import { backends, sleep, trackWorker, until } from '../helpers/backends.js'
import { REDIS_URL } from '../helpers/services.js'

const redisBackend = backends.find((b) => b.label === 'redis')!

function startChild(queueName: string, mode: 'hang' | 'breaker'): ChildProcess {
  return spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--import',
      './scripts/register-lua.mjs',
      'test/fixtures/fleet-worker.ts',
      REDIS_URL,
      queueName,
      mode,
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  )
}

const output = new WeakMap<ChildProcess, { text: string }>()

async function printed(child: ChildProcess, line: string): Promise<void> {
  let out = output.get(child)
  if (!out) {
    const o = { text: '' }
    output.set(child, o)
    out = o
    child.stdout!.on('data', (chunk: Buffer) => {
      o.text += chunk.toString()
    })
  }
  const seen = out
  await until(() => seen.text.includes(line), 30_000, `the child worker to print ${line}`)
}

const ready = (child: ChildProcess) => printed(child, 'ready')

async function kill(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill(signal)
  await exited
}

describe.skipIf(!redisBackend.available)('the worker fleet across processes', () => {
  let log: Redis
  beforeAll(() => {
    log = new Redis(REDIS_URL)
  })
  afterAll(async () => {
    await log.quit()
  })

  it('reclaims the leases of a SIGKILLed worker from its missed heartbeats, long before leaseMs', async () => {
    const queue = redisBackend.queue()
    const events = `fleet-test:{${queue.name}}:events`
    const job = defineTask({ name: 'job', input: z.object({ n: z.number() }) })
    const child = startChild(queue.name, 'hang')
    try {
      await ready(child)
      const ids = (await queue.submitMany([1, 2, 3].map((n) => ({ task: job, input: { n } })))).map(
        (t) => t.id,
      )
      await until(async () => (await log.llen(events)) === 3, 10_000, 'the child to start all three tasks')
      const listed = await until(
        async () => {
          const all = await queue.workers()
          return all[0]?.tasksInHand === 3 ? all : null
        },
        5000,
        'a heartbeat with three tasks in hand',
      )
      expect(listed).toHaveLength(1)
      expect(listed[0]).toMatchObject({ status: 'ACTIVE', tasksInHand: 3, pid: child.pid, concurrency: 5 })
      const childId = listed[0]!.id
      await kill(child)
      const killedAt = Date.now()

      const reaped: { workerId: string; tasks: number }[] = []
      const survivor = trackWorker({ queue, concurrency: 5, heartbeatMs: 200, leaseMs: 60_000 }).handle(
        job,
        (input) => input.n * 10,
      )
      survivor.on('worker:reaped', (e) => reaped.push(e))
      await survivor.start()
      for (const id of ids)
        expect(await waitForTask(queue, id, { timeoutMs: 15_000 })).toMatchObject({ status: 'completed' })
      const took = Date.now() - killedAt
      expect(took).toBeLessThan(10_000) // the lease is 60 s: only the heartbeats can explain this
      expect(reaped).toEqual([{ workerId: childId, tasks: 3 }])
      const fleet = await queue.workers()
      expect(fleet.find((w) => w.id === childId)).toMatchObject({ status: 'UNHEALTHY', pid: child.pid })
      await until(
        async () => (await queue.workers()).find((w) => w.id === survivor.id)?.tasksProcessed === 3,
        5000,
        'the survivor to report three tasks processed',
      )
      expect((await queue.workers()).find((w) => w.id === survivor.id)).toMatchObject({
        status: 'IDLE',
        tasksInHand: 0,
      })
      expect(survivor.stats()).toMatchObject({
        id: survivor.id,
        processed: 3,
        failed: 0,
        inFlight: 0,
        concurrency: 5,
      })
      await survivor.close()
      expect((await queue.workers()).map((w) => w.id)).toEqual([childId]) // a clean close leaves the list
    } finally {
      await kill(child)
      await log.del(events)
    }
  }, 60_000)

  it('a second worker process refuses to run tasks once the first opened the breaker', async () => {
    const queue = redisBackend.queue()
    const events = `fleet-test:{${queue.name}}:events`
    const flaky = defineTask({ name: 'flaky', input: z.object({ n: z.number() }) })
    const warnings: string[] = []
    const logger = {
      debug() {},
      info() {},
      warn: (_: object, msg?: string) => warnings.push(msg ?? ''),
      error() {},
    }
    // The second process loads first (module loading is slow and not what this test times).
    const child = startChild(queue.name, 'breaker')
    try {
      await printed(child, 'loaded')
      // The first worker (this process) fails three times in a row: the shared breaker opens.
      const first = trackWorker({
        queue,
        concurrency: 1,
        logger,
        breakers: { flaky: { failureThreshold: 3, resetMs: 4000 } },
        taskBreakers: true,
      }).handle(flaky, () => {
        throw new Error('the mail server is down')
      })
      await first.start()
      const failing = await queue.submitMany(
        [1, 2, 3].map((n) => ({ task: flaky, input: { n }, options: { maxRetries: 0 } })),
      )
      for (const t of failing) expect((await waitForTask(queue, t.id)).status).toBe('failed')
      const opened = await until(
        async () => {
          const s = await queue.breaker('flaky').state()
          return s.state === 'open' ? s : null
        },
        5000,
        'the breaker to open',
      )
      expect(warnings.some((w) => w.includes('circuit breaker flaky opened'))).toBe(true)
      await first.close()

      child.stdin!.write('go\n')
      await ready(child)
      const later = await queue.submitMany([1, 2, 3, 4].map((n) => ({ task: flaky, input: { n } })))
      await until(
        async () => (await log.lrange(events, 0, -1)).some((e) => e.startsWith('deferred')),
        10_000,
        'the child to defer tasks',
      )
      // After resetMs one trial runs in the child, succeeds, the breaker closes and the rest run.
      for (const t of later) {
        const done = await waitForTask(queue, t.id, { timeoutMs: 20_000 })
        expect(done).toMatchObject({ status: 'completed', attempts: 1 })
      }
      const ran = (await log.lrange(events, 0, -1)).filter((e) => e.startsWith('ran'))
      expect(ran).toHaveLength(4)
      // Nothing ran in the second process while the breaker was open.
      for (const r of ran) expect(Number(r.split(':')[3])).toBeGreaterThanOrEqual(opened.openUntil!.getTime())
      expect(await queue.breaker('flaky').state()).toMatchObject({
        state: 'closed',
        failures: 0,
        openUntil: null,
      })
    } finally {
      await kill(child)
      await log.del(events)
    }
    await sleep(0)
  }, 60_000)
})

/**
 * Group concurrency across processes: three worker processes never run more than the cap of one
 * group at once (checked with a counter they share in Redis), and a SIGKILLed worker's slots come
 * back once its leases are reclaimed.
 */
import type { ChildProcess } from 'node:child_process'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { defineTask } from '../../src/index.js'
import { waitForTask } from '../../src/testing.js'
import { backends, trackWorker, until } from '../helpers/backends.js'
import { REDIS_URL } from '../helpers/services.js'
import { spawnFixture } from '../helpers/spawn-fixture.js'

const redisBackend = backends.find((b) => b.label === 'redis')!
const job = defineTask({ name: 'job', input: z.object({ n: z.number() }) })

function startWorker(
  queueName: string,
  mode: 'count' | 'hang',
): { child: ChildProcess; ready: Promise<void> } {
  const child = spawnFixture('test/fixtures/flow-worker.ts', [REDIS_URL, queueName, mode], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let text = ''
  child.stdout!.on('data', (chunk: Buffer) => {
    text += chunk.toString()
  })
  const ready = until(() => text.includes('ready'), 30_000, 'the worker process to start')
  return { child, ready: ready.then(() => {}) }
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGKILL')
  await exited
}

describe.skipIf(!redisBackend.available)('group concurrency across worker processes', () => {
  let log: Redis
  beforeAll(() => {
    log = new Redis(REDIS_URL)
  })
  afterAll(async () => {
    await log.quit()
  })

  it('never runs more than the cap of a group at once across three processes', async () => {
    const queue = redisBackend.queue({ groupConcurrency: 2 })
    const children = [0, 1, 2].map(() => startWorker(queue.name, 'count'))
    try {
      await Promise.all(children.map((c) => c.ready))
      const entries = ['a', 'b', 'c'].flatMap((tenantId) =>
        Array.from({ length: 30 }, (_, n) => ({ task: job, input: { n }, options: { tenantId } })),
      )
      const ids = (await queue.submitMany(entries)).map((r) => r.id)
      for (const id of ids)
        expect((await waitForTask(queue, id, { timeoutMs: 30_000 })).status).toBe('completed')
      const seen = await log.lrange(`flow-test:{${queue.name}}:seen`, 0, -1)
      expect(seen).toHaveLength(90)
      const most = new Map<string, number>()
      for (const entry of seen) {
        const [group, value] = entry.split(':')
        most.set(group!, Math.max(most.get(group!) ?? 0, Number(value)))
      }
      // Never over the cap; and the cap was used (two at once), so the check could have failed.
      expect(Object.fromEntries(most)).toEqual({ a: 2, b: 2, c: 2 })
    } finally {
      await Promise.all(children.map((c) => kill(c.child)))
    }
  }, 60_000)

  it("gives a SIGKILLed worker's group slots back once its leases are reclaimed", async () => {
    const queue = redisBackend.queue({ groupConcurrency: 2 })
    const hanging = startWorker(queue.name, 'hang')
    try {
      await hanging.ready
      const ids = (
        await queue.submitMany(
          Array.from({ length: 4 }, (_, n) => ({ task: job, input: { n }, options: { tenantId: 'a' } })),
        )
      ).map((r) => r.id)
      const seen = `flow-test:{${queue.name}}:seen`
      await until(async () => (await log.llen(seen)) === 2, 10_000, 'the hanging worker to take both slots')
      // The cap holds: the other two wait although the hanging worker has free concurrency.
      expect((await queue.counts({ flow: true })).flow?.groups).toEqual([
        { group: 'a', ready: 2, running: 2, blocked: 'capped' },
      ])
      await kill(hanging.child)
      const worker = trackWorker({ queue, concurrency: 5, heartbeatMs: 200, pollIntervalMs: 50 })
      worker.handle(job, ({ n }) => n)
      await worker.start()
      for (const id of ids)
        expect((await waitForTask(queue, id, { timeoutMs: 15_000 })).status).toBe('completed')
      await worker.close()
      expect((await queue.counts({ flow: true })).flow?.groups).toEqual([])
    } finally {
      await kill(hanging.child)
    }
  }, 60_000)
})

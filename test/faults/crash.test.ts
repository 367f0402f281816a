import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { defineTask } from '../../src/index.js'
import { waitForTask } from '../../src/testing.js'
import { backends, trackWorker, until } from '../helpers/backends.js'
import { spawnFixture } from '../helpers/spawn-fixture.js'

const redisBackend = backends.find((b) => b.label === 'redis')!
const job = defineTask({ name: 'job', input: z.object({ n: z.number() }) })

describe.skipIf(!redisBackend.available)('a worker killed with SIGKILL mid-task', () => {
  let log: Redis
  beforeAll(() => {
    log = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')
  })
  afterAll(async () => {
    await log.quit()
  })

  it('has its tasks completed by another worker, each exactly once', async () => {
    const queue = redisBackend.queue()
    const startedKey = `crash-test:{${queue.name}}:started`
    const child = spawnFixture(
      'test/fixtures/crash-worker.ts',
      [process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', queue.name],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    )
    try {
      await until(
        () => child.stdout!.read()?.toString().includes('ready'),
        20_000,
        'the child worker to start',
      )
      const ids = (await queue.submitMany([1, 2, 3].map((n) => ({ task: job, input: { n } })))).map(
        (t) => t.id,
      )
      await until(
        async () => (await log.llen(startedKey)) === 3,
        10_000,
        'the child to start all three tasks',
      )
      expect(child.kill('SIGKILL')).toBe(true)
      await new Promise((resolve) => child.once('exit', resolve))

      const completions = new Map<string, number>()
      const survivor = trackWorker({ queue, concurrency: 5 }).handle(job, (input, ctx) => {
        completions.set(ctx.taskId, (completions.get(ctx.taskId) ?? 0) + 1)
        return input.n * 10
      })
      await survivor.start()
      for (const id of ids) {
        const done = await waitForTask(queue, id, { timeoutMs: 10_000 })
        expect(done).toMatchObject({ status: 'completed', attempts: 2 })
        expect(done.history).toMatchObject([{ attempt: 1, outcome: 'lease-expired' }])
        expect(done.workerId).toBe(survivor.id)
      }
      await survivor.close()
      expect([...completions.values()]).toEqual([1, 1, 1])
      expect((await queue.counts()).processing).toBe(0)
    } finally {
      child.kill('SIGKILL')
      await log.del(startedKey)
    }
  }, 60_000)
})

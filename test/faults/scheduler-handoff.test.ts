/**
 * A cron tick whose scheduler dies between the PostgreSQL insert and the Redis hand-off (issue 14
 * item 6): the next scheduler re-fires the tick, the store matches the stored task by its tick key,
 * and that task must be handed to the broker at once, not wait for reconciliation's grace period.
 * The scheduler process SIGKILLs itself at exactly that point (test/fixtures/scheduler-process.ts).
 */
import type { ChildProcess } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createQueue, createScheduler, defineTask, type Worker } from '../../src/index.js'
import { internals } from '../../src/queue/internal.js'
import { trackWorker, until } from '../helpers/backends.js'
import { hasPostgres, hasRedis, uniqueName } from '../helpers/services.js'
import { durableOptions, spawnScheduler, track } from '../schedule/harness.js'

const up = (await hasRedis()) && (await hasPostgres())
const beat = defineTask({ name: 'beat', input: z.object({ n: z.number() }) })
/** Reconciliation's default grace: what the stored task would wait without the fix. */
const GRACE_MS = 60_000
/** From the second scheduler's start to the task's completion, with the fix: well under the grace. */
const HANDOFF_BOUND_MS = 20_000

function exited(child: ChildProcess): Promise<NodeJS.Signals | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.signalCode)
  return new Promise((resolve) => child.once('exit', (_code, signal) => resolve(signal)))
}

describe.skipIf(!up)('a scheduler SIGKILLed between the insert and the hand-off', () => {
  it('leaves a tick the next scheduler hands to the broker at once', { timeout: 120_000 }, async () => {
    const queue = track(
      createQueue({
        ...durableOptions(uniqueName('sch-kill')),
        recovery: { reconcileGraceMs: GRACE_MS, reconcileIntervalMs: 30_000 },
      }),
    )
    await queue.schedules.upsert({ id: 'five', cron: '*/5 * * * * *', task: beat, input: { n: 1 } })
    const child = spawnScheduler(queue.name, {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, TASKLOOM_TEST_KILL_AFTER_INSERT: '1' },
    })
    let worker: Worker | undefined
    try {
      const signal = await Promise.race([
        exited(child),
        new Promise<'alive'>((r) => setTimeout(() => r('alive'), 60_000)),
      ])
      expect(signal, 'the scheduler process killed itself after its insert').toBe('SIGKILL')

      // The tick is stored, and the broker never got it. (A scheduler that started late fires every
      // tick due by then in one batch: one or more rows, each with its tick's key.)
      const stored = (await queue.list({ name: 'beat' })).tasks
      expect(stored.length).toBeGreaterThanOrEqual(1)
      for (const task of stored) {
        expect(task.idempotencyKey).toMatch(/^schedule:five:\d+$/)
        expect(await queue[internals].broker.get(task.id)).toBeNull()
      }
      const ids = stored.map((t) => t.id)

      worker = trackWorker({ queue, concurrency: 2, pollIntervalMs: 50 })
      const ran: string[] = []
      worker.handle(beat, async (_input, ctx) => {
        ran.push(ctx.taskId)
      })
      await worker.start()
      const started = Date.now()
      const scheduler = track(createScheduler({ queue, pollMs: 50, refillMs: 500 }))
      await scheduler.start()
      await until(
        async () => ids.every((id) => ran.includes(id)),
        HANDOFF_BOUND_MS,
        `the re-fired ticks' stored tasks to run (reconciliation would take ${GRACE_MS / 1000} s or more)`,
      )
      expect(Date.now() - started).toBeLessThan(GRACE_MS)
      await scheduler.close()
      // Still one task per tick.
      const all = (await queue.list({ name: 'beat', limit: 1000 })).tasks
      for (const task of stored) {
        const same = all.filter((t) => t.idempotencyKey === task.idempotencyKey)
        expect(same.map((t) => t.id)).toEqual([task.id])
        // A read shows completed once the store has it (the change feed's 100-300 ms after the run).
        await until(
          async () => (await queue.get(task.id))?.status === 'completed',
          10_000,
          `task ${task.id} to read completed`,
        )
      }
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      await worker?.close({ graceMs: 0 })
    }
  })
})

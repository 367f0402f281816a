/**
 * Three scheduler processes on one queue, a one-second schedule: every tick becomes exactly one
 * task, even when one process is killed with SIGKILL halfway and a new one takes its place.
 */
import type { ChildProcess } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createQueue, defineTask } from '../../src/index.js'
import { sleep, until } from '../helpers/backends.js'
import { hasPostgres, hasRedis, uniqueName } from '../helpers/services.js'
import { durableOptions, spawnScheduler, track } from './harness.js'

const up = (await hasRedis()) && (await hasPostgres())
const beat = defineTask({ name: 'beat', input: z.object({ n: z.number() }) })

function startScheduler(name: string): ChildProcess {
  return spawnScheduler(name, { stdio: ['ignore', 'pipe', 'inherit'] })
}

async function ready(child: ChildProcess): Promise<void> {
  let out = ''
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString()
  })
  await until(() => out.includes('ready'), 30_000, 'a scheduler process to start')
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => child.once('exit', () => resolve()))
}

describe.skipIf(!up)('three scheduler processes', () => {
  it('enqueue exactly one task per tick of a one-second schedule', { timeout: 120_000 }, async () => {
    const queue = track(createQueue(durableOptions(uniqueName('sch3'))))
    await queue.schedules.upsert({ id: 'every-second', cron: '* * * * * *', task: beat, input: { n: 1 } })
    const children = [1, 2, 3].map(() => startScheduler(queue.name))
    try {
      await Promise.all(children.map(ready))
      const startedAt = Date.now()
      await sleep(6000)
      // One of them dies without a word; a new one takes its place.
      children[0]!.kill('SIGKILL')
      await exited(children[0]!)
      children[0] = startScheduler(queue.name)
      await ready(children[0])
      await sleep(8000)
      const stoppedAt = Date.now()
      for (const c of children) c.kill('SIGTERM')
      await Promise.all(children.map(exited))

      const page = await queue.list({ name: 'beat', limit: 1000 })
      const ticks = page.tasks.map((t) => {
        const m = /^schedule:every-second:(\d+)$/.exec(t.idempotencyKey ?? '')
        expect(m, `task ${t.id} has a tick key`).not.toBeNull()
        return Number(m![1])
      })
      const byTick = new Map<number, number>()
      for (const t of ticks) byTick.set(t, (byTick.get(t) ?? 0) + 1)
      const doubled = [...byTick].filter(([, n]) => n > 1)
      expect(doubled, 'ticks with more than one task').toEqual([])
      // Every second from the first tick after the processes were up to the last one before they
      // stopped has its task.
      const from = Math.ceil(startedAt / 1000) * 1000
      const to = Math.floor((stoppedAt - 1500) / 1000) * 1000
      const missing: number[] = []
      for (let t = from; t <= to; t += 1000) if (!byTick.has(t)) missing.push(t)
      expect(missing, 'ticks without a task').toEqual([])
      expect(to - from).toBeGreaterThanOrEqual(10_000)
      for (const t of ticks) expect(t % 1000).toBe(0)
      const s = await queue.schedules.get('every-second')
      expect(s!.lastRunAt!.getTime()).toBe(Math.max(...ticks))
    } finally {
      for (const c of children) if (c.exitCode === null) c.kill('SIGKILL')
    }
  })
})

/**
 * Promises 1 and 2 against workers dying: three worker processes (test/fixtures/durable-worker.ts)
 * run 10,000 durable tasks while the test kills one with SIGKILL about every second and starts a new
 * one. Every task must end `completed` in the store with the result of its last run (the one holding
 * the highest fencing token); no completion may be accepted twice; a task runs more than once only
 * when a worker running it was killed.
 */
import type { ChildProcess } from 'node:child_process'
import { Redis } from 'ioredis'
import { describe, expect, it } from 'vitest'
import { durableJob, durableQueue, StoreProbe, sleep, waitFor } from '../fixtures/durable-common.js'
import { canRunPrivateServers, usePrivateServers } from '../helpers/private-servers.js'
import { uniqueName } from '../helpers/services.js'
import { spawnFixture } from '../helpers/spawn-fixture.js'

const canRun = await canRunPrivateServers()

const TOTAL = 10_000
const WORKERS = 3
const KILL_EVERY_MS = 1000

interface Child {
  process: ChildProcess
  pid: number
  ready: boolean
  spawnedAt: number
}

/** How long each worker process took from spawn to `ready`. */
const startupMs: number[] = []

describe.skipIf(!canRun)('durable workers killed with SIGKILL over and over', () => {
  const servers = usePrivateServers()

  it('completes all 10,000 tasks, none completed twice', async () => {
    const name = uniqueName('durable-sigkill')
    const queue = durableQueue(name, servers.redis().url, servers.postgres().url)
    const probe = new StoreProbe(servers.postgres().url, name)
    const log = new Redis(servers.redis().url)
    const children = new Set<Child>()
    const killed = new Set<number>()
    const stderr: string[] = []
    const t0 = Date.now()
    const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(1)} s`

    const spawnWorker = (): Child => {
      const proc = spawnFixture(
        'test/fixtures/durable-worker.ts',
        [servers.redis().url, servers.postgres().url, name],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      )
      const child: Child = { process: proc, pid: proc.pid!, ready: false, spawnedAt: Date.now() }
      children.add(child)
      proc.stdout!.on('data', (chunk: Buffer) => {
        if (!child.ready && chunk.toString().includes('ready')) {
          child.ready = true
          startupMs.push(Date.now() - child.spawnedAt)
        }
      })
      proc.stderr!.on('data', (chunk: Buffer) => {
        stderr.push(...chunk.toString().split('\n').filter(Boolean))
        if (stderr.length > 200) stderr.splice(0, stderr.length - 200)
      })
      proc.once('exit', (code, signal) => {
        children.delete(child)
        if (signal !== 'SIGKILL')
          stderr.push(`[test] worker ${child.pid} exited: code ${code}, signal ${signal}`)
      })
      return child
    }
    const killOne = async (child: Child) => {
      killed.add(child.pid)
      const exited = new Promise((r) => child.process.once('exit', r))
      child.process.kill('SIGKILL')
      await exited
    }

    let killing = true
    let kills = 0
    let killer: Promise<void> | undefined
    try {
      await queue.ready()
      for (let i = 0; i < WORKERS; i++) spawnWorker()
      await waitFor(
        async () => [...children].filter((c) => c.ready).length === WORKERS,
        30_000,
        () => `${WORKERS} worker processes to start; stderr: ${stderr.slice(-10).join('\n')}`,
        50,
      )

      // Kill the oldest ready worker about every second, and start another in its place.
      killer = (async () => {
        while (killing) {
          await sleep(KILL_EVERY_MS * (0.8 + Math.random() * 0.4))
          if (!killing) return
          const victim = [...children].filter((c) => c.ready).sort((a, b) => a.spawnedAt - b.spawnedAt)[0]
          if (!victim) continue
          await killOne(victim)
          kills++
          if (killing) spawnWorker()
        }
      })()

      // Submit (mixed batches and singles) while the workers run and die.
      const acknowledged = new Set<string>()
      for (let n = 0; n < TOTAL; n += 500) {
        if ((n / 500) % 2 === 0) {
          const entries = Array.from({ length: 500 }, (_, i) => ({ task: durableJob, input: { n: n + i } }))
          for (const r of await queue.submitMany(entries)) acknowledged.add(r.id)
        } else {
          const singles = Array.from({ length: 500 }, (_, i) => queue.submit(durableJob, { n: n + i }))
          for (const r of await Promise.all(singles)) acknowledged.add(r.id)
        }
      }
      expect(acknowledged.size).toBe(TOTAL)
      const submittedAt = elapsed()

      let counts = await probe.counts()
      await waitFor(
        async () => {
          counts = await probe.counts()
          return counts?.completed === TOTAL
        },
        120_000,
        () =>
          `every task to complete in the store; store: ${JSON.stringify(counts)}, ${kills} kills; ` +
          `worker stderr:\n${stderr.slice(-20).join('\n')}`,
        250,
      )
      const doneAt = elapsed()
      killing = false
      await killer
      for (const c of [...children]) {
        c.process.kill('SIGKILL')
      }

      // What the handlers and the workers recorded.
      const execs = (await log.lrange(`durable-sigkill:{${name}}:exec`, 0, -1)).map(parseRecord)
      const completions = (await log.lrange(`durable-sigkill:{${name}}:completed`, 0, -1)).map(parseRecord)
      const runs = new Map<string, Run[]>()
      for (const e of execs) {
        const list = runs.get(e.id)
        if (list) list.push(e)
        else runs.set(e.id, [e])
      }
      const rerun = [...runs.values()].filter((l) => l.length > 1)
      console.info(
        `[durable-sigkill] submitted at ${submittedAt}; all completed at ${doneAt}; ${kills} kills; ` +
          `${execs.length} handler runs for ${TOTAL} tasks; ${rerun.length} tasks ran more than once ` +
          `(max ${Math.max(0, ...rerun.map((l) => l.length))} runs); ${completions.length} completions recorded; ` +
          `worker startup ${Math.min(...startupMs)}-${Math.max(...startupMs)} ms ` +
          `(mean ${Math.round(startupMs.reduce((a, b) => a + b, 0) / startupMs.length)})`,
      )

      // The store: every acknowledged task completed, one row each.
      const rows = (await probe.rows())!
      expect(rows.length).toBe(TOTAL)
      expect(new Set(rows.map((r) => r.id)).size).toBe(TOTAL)
      expect(rows.filter((r) => !acknowledged.has(r.id)).length).toBe(0)
      expect(rows.filter((r) => r.status !== 'completed').length).toBe(0)

      // At most one completion: the stored result is the last run's (highest fencing token), and no
      // worker saw a second completion of one task accepted.
      const notLastRun: string[] = []
      for (const row of rows) {
        const result = row.result as { n: number; pid: number; token: number }
        const mine = runs.get(row.id) ?? []
        const last = mine.reduce((a, b) => (b.token > a.token ? b : a), mine[0]!)
        if (!last || result?.token !== last.token || result.pid !== last.pid) {
          notLastRun.push(`${row.id}: stored ${JSON.stringify(result)}, runs ${JSON.stringify(mine)}`)
        }
      }
      expect(notLastRun.slice(0, 5)).toEqual([])
      const accepted = new Map<string, number>()
      for (const c of completions) accepted.set(c.id, (accepted.get(c.id) ?? 0) + 1)
      expect([...accepted].filter(([, k]) => k > 1).slice(0, 5)).toEqual([])

      // At-least-once, and only as much as the kills force: every task ran; a run that did not
      // complete was on a worker that was killed.
      expect(runs.size).toBe(TOTAL)
      const unexplained: string[] = []
      for (const [id, list] of runs) {
        if (list.length < 2) continue
        const maxToken = Math.max(...list.map((r) => r.token))
        for (const r of list) {
          if (r.token !== maxToken && !killed.has(r.pid)) {
            unexplained.push(`${id}: run ${JSON.stringify(r)} was not killed (runs ${JSON.stringify(list)})`)
          }
        }
      }
      expect(unexplained.slice(0, 5)).toEqual([])
      expect(kills).toBeGreaterThan(0)
    } finally {
      killing = false
      await killer?.catch(() => {})
      for (const c of [...children]) c.process.kill('SIGKILL')
      await queue.close().catch(() => {})
      await probe.close()
      log.disconnect()
    }
  }, 180_000)
})

interface Run {
  id: string
  attempt: number
  token: number
  pid: number
}

function parseRecord(line: string): Run {
  const [id, attempt, token, pid] = line.split(' ')
  return { id: id!, attempt: Number(attempt), token: Number(token), pid: Number(pid) }
}

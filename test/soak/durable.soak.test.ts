/**
 * The durable-mode soak (issue 14, Proof): producers, idempotent submits and cancels against three
 * worker processes, on a private PostgreSQL and a private Redis with an append-only file, while
 * faults are combined in rounds of 75 s:
 * - a worker SIGKILLed every 8 s (and a new one started), another SIGSTOPped past its lease every 13 s;
 * - Redis restarted empty; PostgreSQL restarted; PostgreSQL frozen (SIGSTOP) for 3 s;
 * - Redis SIGKILLed and restarted from a copy of its AOF taken 8 s earlier (a rollback).
 * Then the faults stop and the queue gets time to settle, and every invariant is checked:
 * nothing acknowledged lost or stuck, at most one completion per task accepted by any one Redis
 * server and the store keeping the last run's result, fencing tokens
 * unique and strictly increasing per task, no status going backwards to a reader polling `get()`,
 * cancelled tasks never run, one task per idempotency key. Every violation is reported (which
 * invariant, how many, which tasks, with their timelines), not only the first.
 *
 * Duration: SOAK_SECONDS (default 75, one round). `npm run soak` runs 300 s. Not part of `npm test`
 * (see docs/soak.md).
 */
import type { ChildProcess } from 'node:child_process'
import { appendFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TaskloomError, type TaskStatus } from '../../src/index.js'
import { durableJob, durableQueue, StoreProbe, sleep } from '../fixtures/durable-common.js'
import { type PrivatePostgres, startPrivatePostgres } from '../helpers/private-postgres.js'
import { type PrivateRedis, startPrivateRedis } from '../helpers/private-redis.js'
import { canRunPrivateServers } from '../helpers/private-servers.js'
import { uniqueName } from '../helpers/services.js'
import { spawnFixture } from '../helpers/spawn-fixture.js'

const canRun = await canRunPrivateServers()

const SECONDS = Number(process.env.SOAK_SECONDS ?? 75)
const ROUND_MS = 75_000
const SETTLE_MS = Number(process.env.SOAK_SETTLE_SECONDS ?? 120) * 1000
const WORKERS = 3
const LEASE_MS = 1000
const KILL_EVERY_MS = 8000
const STOP_EVERY_MS = 13_000
const STOP_FOR_MS = LEASE_MS * 2.5
/** A file that gets every line the worker processes print, and the faults (for a post-mortem). */
const SOAK_LOG = process.env.SOAK_LOG

interface Child {
  process: ChildProcess
  pid: number
  ready: boolean
  spawnedAt: number
}

interface Run {
  id: string
  attempt: number
  token: number
  pid: number
  at: number
  /** For an accepted completion: the run_id of the Redis server that accepted it. */
  server?: string
}

interface Ack {
  at: number
  kind: 'single' | 'many' | 'keyed' | 'delayed'
}

const TERMINAL = new Set<TaskStatus>(['completed', 'failed', 'cancelled'])

describe.skipIf(!canRun)('durable soak: combined faults, every invariant', () => {
  let redis: PrivateRedis | undefined
  let postgres: PrivatePostgres | undefined
  beforeAll(async () => {
    ;[redis, postgres] = await Promise.all([
      startPrivateRedis({ persistent: true, appendfsync: 'everysec' }),
      startPrivatePostgres(),
    ])
  }, 60_000)
  afterAll(async () => {
    postgres?.resume()
    await Promise.allSettled([redis?.stop(), postgres?.stop()])
  })

  it(`holds every promise for ${SECONDS} s of combined faults`, {
    timeout: SECONDS * 1000 + SETTLE_MS + 180_000,
  }, async () => {
    const r = redis!
    const pgServer = postgres!
    const name = uniqueName('soak')
    const queue = durableQueue(name, r.url, pgServer.url, { postgresPool: { queryTimeoutMs: 2000 } })
    const probe = new StoreProbe(pgServer.url, name)
    const t0 = Date.now()
    const rel = (ms: number) => `${((ms - t0) / 1000).toFixed(1)}s`
    const faults: string[] = []
    const fault = (what: string) => {
      faults.push(`${rel(Date.now())} ${what}`)
      if (SOAK_LOG) appendFileSync(SOAK_LOG, `${Date.now()} fault ${what}\n`)
    }

    // Worker processes and what they print.
    const children = new Set<Child>()
    const killed = new Set<number>()
    const runs: Run[] = []
    const done: Run[] = []
    const stderr: string[] = []
    const spawnWorker = (): Child => {
      const proc = spawnFixture(
        'test/fixtures/soak-worker.ts',
        [r.url, pgServer.url, name, String(LEASE_MS)],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      )
      const child: Child = { process: proc, pid: proc.pid!, ready: false, spawnedAt: Date.now() }
      children.add(child)
      let buffered = ''
      proc.stdout!.on('data', (chunk: Buffer) => {
        buffered += chunk.toString()
        const lines = buffered.split('\n')
        buffered = lines.pop()!
        for (const line of lines) {
          if (line === 'ready') child.ready = true
          if (SOAK_LOG) appendFileSync(SOAK_LOG, `${Date.now()} ${proc.pid} ${line}\n`)
          const [kind, id, attempt, token, pid, ms, server] = line.split(' ')
          if ((kind === 'exec' || kind === 'done') && id) {
            // The worker's own clock: when its handler started, or when the broker's answer came.
            const at = Number(ms)
            const run: Run = {
              id,
              attempt: Number(attempt),
              token: Number(token),
              pid: Number(pid),
              at,
              server,
            }
            ;(kind === 'exec' ? runs : done).push(run)
          }
        }
      })
      proc.stderr!.on('data', (chunk: Buffer) => {
        if (SOAK_LOG) appendFileSync(SOAK_LOG, `${Date.now()} ${proc.pid} stderr ${chunk.toString()}`)
        stderr.push(...chunk.toString().split('\n').filter(Boolean))
        if (stderr.length > 200) stderr.splice(0, stderr.length - 200)
      })
      proc.once('exit', () => children.delete(child))
      return child
    }
    const killWorker = async (child: Child) => {
      killed.add(child.pid)
      const exited = new Promise((resolve) => child.process.once('exit', resolve))
      child.process.kill('SIGCONT')
      child.process.kill('SIGKILL')
      await exited
    }

    // What the test was told.
    const acked = new Map<string, Ack>()
    const byKey = new Map<string, Set<string>>()
    const cancelAcked = new Map<string, number>()
    /** Cancels that failed: the task may end cancelled (the broker took it) or completed. */
    const cancelFailed = new Set<string>()
    const errors = new Map<string, number>()
    const countError = (what: string, err: unknown) => {
      const code = err instanceof TaskloomError ? err.code : (err as Error).message.slice(0, 60)
      const k = `${what}: ${code}`
      errors.set(k, (errors.get(k) ?? 0) + 1)
    }
    // What a reader polling get() saw, per task: the statuses in order.
    const seen = new Map<string, TaskStatus[]>()
    const backwards = new Map<string, string>()

    let running = true
    let n = 0
    const loops: Promise<void>[] = []
    try {
      await queue.ready()
      for (let i = 0; i < WORKERS; i++) spawnWorker()
      const readyBy = Date.now() + 60_000
      while ([...children].filter((c) => c.ready).length < WORKERS) {
        if (Date.now() > readyBy) throw new Error(`workers did not start: ${stderr.slice(-10).join('\n')}`)
        await sleep(50)
      }

      // Two producers: singles, batches, idempotent submits (new keys and repeats), and delayed
      // tasks that are cancelled a moment later.
      const keys: string[] = []
      const keyInput = new Map<string, number>()
      const producer = async (p: number) => {
        while (running) {
          const roll = Math.random()
          try {
            if (roll < 0.6) {
              const res = await queue.submit(durableJob, { n: n++ })
              acked.set(res.id, { at: Date.now(), kind: 'single' })
            } else if (roll < 0.7) {
              const entries = Array.from({ length: 20 }, () => ({ task: durableJob, input: { n: n++ } }))
              const res = await queue.submitMany(entries)
              for (const x of res) acked.set(x.id, { at: Date.now(), kind: 'many' })
            } else if (roll < 0.9) {
              const key =
                keys.length > 0 && roll < 0.8
                  ? keys[Math.floor(Math.random() * keys.length)]!
                  : `k-${p}-${keys.push(`k-${p}-${keys.length}`) - 1}`
              // A repeat of a key repeats its first request (another input would be IDEMPOTENCY_CONFLICT).
              if (!keyInput.has(key)) keyInput.set(key, n++)
              const res = await queue.submit(durableJob, { n: keyInput.get(key)! }, { idempotencyKey: key })
              if (!acked.has(res.id)) acked.set(res.id, { at: Date.now(), kind: 'keyed' })
              const ids = byKey.get(key) ?? new Set<string>()
              ids.add(res.id)
              byKey.set(key, ids)
            } else {
              const res = await queue.submit(durableJob, { n: -n++ }, { delayMs: 5000 })
              acked.set(res.id, { at: Date.now(), kind: 'delayed' })
              await sleep(100 + Math.random() * 900)
              try {
                await queue.cancel(res.id)
                cancelAcked.set(res.id, Date.now())
              } catch (err) {
                cancelFailed.add(res.id)
                countError('cancel', err)
              }
            }
          } catch (err) {
            countError('submit', err)
            await sleep(50)
          }
          await sleep(10 + Math.random() * 20)
        }
      }
      loops.push(producer(1), producer(2))

      // The reader: polls get() for a sample of tasks and remembers what it saw.
      loops.push(
        (async () => {
          while (running) {
            const sample = [...acked.keys()].filter((_, i) => i % 20 === 0).slice(-200)
            for (const id of [...sample, ...[...cancelAcked.keys()].slice(-50)]) {
              try {
                const info = await queue.get(id)
                if (!info) continue
                const list = seen.get(id) ?? []
                const last = list[list.length - 1]
                if (last !== info.status) {
                  if (last !== undefined && TERMINAL.has(last) && !backwards.has(id))
                    backwards.set(id, `${last} then ${info.status} at ${rel(Date.now())}`)
                  list.push(info.status)
                  seen.set(id, list)
                }
              } catch (err) {
                countError('get', err)
              }
            }
            await sleep(300)
          }
        })(),
      )

      // Worker faults, all along.
      loops.push(
        (async () => {
          let nextKill = Date.now() + KILL_EVERY_MS
          let nextStop = Date.now() + STOP_EVERY_MS
          while (running) {
            await sleep(200)
            const now = Date.now()
            const ready = [...children].filter((c) => c.ready).sort((a, b) => a.spawnedAt - b.spawnedAt)
            if (now >= nextKill && ready[0]) {
              nextKill = now + KILL_EVERY_MS
              fault(`SIGKILL worker ${ready[0].pid}`)
              await killWorker(ready[0])
              spawnWorker()
            } else if (now >= nextStop && ready.length > 0) {
              nextStop = now + STOP_EVERY_MS
              const victim = ready[ready.length - 1]!
              fault(`SIGSTOP worker ${victim.pid} for ${STOP_FOR_MS} ms`)
              victim.process.kill('SIGSTOP')
              await sleep(STOP_FOR_MS)
              victim.process.kill('SIGCONT')
            }
          }
        })(),
      )

      // Server faults, round after round.
      const end = t0 + SECONDS * 1000
      const at = async (round: number, offsetMs: number) => {
        const when = t0 + round * ROUND_MS + offsetMs
        if (when > end) return false
        await sleep(Math.max(0, when - Date.now()))
        return true
      }
      for (let round = 0; t0 + round * ROUND_MS < end; round++) {
        if (!(await at(round, 20_000))) break
        fault('Redis restarted empty')
        await r.restartEmpty()
        if (!(await at(round, 32_000))) break
        fault('PostgreSQL restarted (1.5 s down)')
        await pgServer.restart({ downMs: 1500 })
        if (!(await at(round, 44_000))) break
        fault('PostgreSQL frozen (SIGSTOP) for 3 s')
        pgServer.pause()
        await sleep(3000)
        pgServer.resume()
        if (!(await at(round, 52_000))) break
        fault('Redis AOF copied')
        const copy = await r.snapshot()
        if (!(await at(round, 60_000))) break
        fault('Redis SIGKILLed and restarted from the copy taken 8 s earlier')
        await r.restartFrom(copy)
      }
      await sleep(Math.max(0, end - Date.now()))
    } finally {
      running = false
      pgServer.resume()
      for (const c of children) c.process.kill('SIGCONT')
      await Promise.allSettled(loops)
    }
    fault('faults and submits stopped; settling')

    // Settle: every acknowledged task that was not cancelled must complete; one whose cancel
    // failed may end either way, but must end.
    const expectDone = [...acked.keys()].filter((id) => !cancelAcked.has(id) && !cancelFailed.has(id))
    const finished = (id: string) => {
      const status = rows.get(id)?.status
      return cancelFailed.has(id) ? status === 'completed' || status === 'cancelled' : status === 'completed'
    }
    let rows = new Map<string, { status: TaskStatus; result: unknown }>()
    const settleBy = Date.now() + SETTLE_MS
    for (;;) {
      const read = await probe.rows()
      if (read) rows = new Map(read.map((row) => [row.id, { status: row.status, result: row.result }]))
      if (expectDone.every(finished) && [...cancelFailed].every(finished)) break
      if (Date.now() > settleBy) break
      await sleep(1000)
    }
    await sleep(1500) // the last completions' lines and feed entries
    const settledAt = rel(Date.now())
    for (const c of [...children]) await killWorker(c)
    const keyRows = await probe.query<{ key: string; n: number; ids: string[] }>(
      `select idempotency_key as key, count(*)::int as n, array_agg(id) as ids from taskloom.tasks
          where queue = $1 and idempotency_key is not null group by idempotency_key having count(*) > 1`,
      [name],
    )
    await queue.close()
    await probe.close()

    // The invariants.
    const runsOf = new Map<string, Run[]>()
    for (const run of runs) runsOf.set(run.id, [...(runsOf.get(run.id) ?? []), run])
    const timeline = (id: string) => {
      const a = acked.get(id)
      const rs = (runsOf.get(id) ?? []).map(
        (x) =>
          `run a${x.attempt} t${x.token} pid ${x.pid}${killed.has(x.pid) ? ' (killed)' : ''} @${rel(x.at)}`,
      )
      const ds = done
        .filter((x) => x.id === id)
        .map((x) => `accepted t${x.token} pid ${x.pid} @${rel(x.at)} by ${x.server}`)
      rs.push(...ds)
      const c = cancelAcked.get(id)
      return `${id}: acked ${a ? `${a.kind} @${rel(a.at)}` : '-'}${c ? `, cancel acked @${rel(c)}` : ''}; store ${rows.get(id)?.status ?? 'missing'}; ${rs.join(', ') || 'never ran'}`
    }
    const violations: Record<string, { count: number; tasks: string[] }> = {}
    const report = (invariant: string, ids: string[], detail: (id: string) => string = timeline) => {
      if (ids.length > 0) violations[invariant] = { count: ids.length, tasks: ids.slice(0, 8).map(detail) }
    }

    report(
      'acknowledged task lost (no row in PostgreSQL)',
      [...acked.keys()].filter((id) => !rows.has(id)),
    )
    report(
      `acknowledged task stuck (not completed ${SETTLE_MS / 1000} s after the faults stopped)`,
      [...expectDone, ...cancelFailed].filter((id) => rows.has(id) && !finished(id)),
    )
    // A completion is recorded once PostgreSQL has it; until then only the Redis server that accepted
    // it knows. Every server restart in the soak loses data (emptied, or rolled back), and with it
    // the completions whose feed entries had not reached the store: those tasks run again and a new
    // server accepts their completion (at-least-once execution, docs/guarantees.md). So a task may
    // have accepted completions from several servers, but never two from one server, and the store
    // must keep the last run's result (checked below).
    const doneOf = new Map<string, Run[]>()
    for (const d of done) doneOf.set(d.id, [...(doneOf.get(d.id) ?? []), d])
    report(
      'completion accepted more than once by one Redis server',
      [...doneOf].filter(([, ds]) => new Set(ds.map((d) => d.server)).size < ds.length).map(([id]) => id),
    )
    const lostWithRedis = [...doneOf].filter(([, ds]) => ds.length > 1).map(([id]) => id)
    const tokenOwners = new Map<number, Set<string>>()
    for (const run of runs) {
      const owners = tokenOwners.get(run.token) ?? new Set<string>()
      owners.add(`${run.id}/${run.attempt}/${run.pid}`)
      tokenOwners.set(run.token, owners)
    }
    const reused = [...tokenOwners].filter(([, owners]) => owners.size > 1)
    if (reused.length > 0) {
      violations['fencing token issued to more than one claim'] = {
        count: reused.length,
        tasks: reused.slice(0, 8).map(([token, owners]) => `token ${token}: ${[...owners].join(', ')}`),
      }
    }
    report(
      'fencing token not above the task’s earlier claims',
      [...runsOf]
        .filter(([, rs]) => rs.some((x, i) => i > 0 && x.token <= rs[i - 1]!.token))
        .map(([id]) => id),
    )
    report(
      'stored result not from the run holding the highest token',
      [...rows]
        .filter(([id, row]) => {
          const rs = runsOf.get(id)
          if (row.status !== 'completed' || !rs) return false
          const stored = (row.result as { token?: number } | null)?.token
          return stored !== Math.max(...rs.map((x) => x.token))
        })
        .map(([id]) => id),
    )
    report(
      'status went backwards to a reader',
      [...backwards.keys()],
      (id) => `${backwards.get(id)}; ${timeline(id)}`,
    )
    report(
      'acknowledged cancel, task ran anyway',
      [...cancelAcked.keys()].filter((id) => (runsOf.get(id) ?? []).length > 0),
    )
    report(
      'acknowledged cancel not recorded in the store',
      [...cancelAcked.keys()].filter((id) => rows.get(id)?.status !== 'cancelled'),
    )
    report(
      'idempotency key answered with more than one task',
      [...byKey].filter(([, ids]) => ids.size > 1).map(([key]) => key),
      (key) => `${key}: ${[...byKey.get(key)!].join(', ')}`,
    )
    report(
      'idempotency key with more than one stored task',
      (keyRows ?? []).map((k) => k.key),
      (key) => `${key}: ${keyRows!.find((k) => k.key === key)!.ids.join(', ')}`,
    )

    const statusCounts: Record<string, number> = {}
    for (const row of rows.values()) statusCounts[row.status] = (statusCounts[row.status] ?? 0) + 1
    const summary = {
      seconds: SECONDS,
      settledAt,
      acknowledged: acked.size,
      cancelsAcknowledged: cancelAcked.size,
      cancelsFailed: cancelFailed.size,
      idempotencyKeys: byKey.size,
      handlerRuns: runs.length,
      acceptedCompletions: done.length,
      completionsLostWithRedis: {
        tasks: lostWithRedis.length,
        timelines: lostWithRedis.slice(0, 4).map(timeline),
      },
      workersKilled: killed.size,
      storeStatuses: statusCounts,
      errors: Object.fromEntries(errors),
      faults,
      violations,
    }
    console.info(`[soak] ${JSON.stringify(summary, null, 2)}`)
    if (process.env.SOAK_REPORT) {
      const { writeFileSync } = await import('node:fs')
      writeFileSync(process.env.SOAK_REPORT, JSON.stringify(summary, null, 2))
    }
    expect(acked.size).toBeGreaterThan(0)
    expect(violations, `invariants violated (faults: ${faults.join('; ')})`).toEqual({})
  })
})

/**
 * `npm run bench:noisy`: the noisy neighbour (docs/flow-control.md, docs/benchmarks.md). Tenant A
 * has `--backlog` tasks ready (default 200,000); tenant B submits one task every `--every` ms
 * (default 10) for `--seconds` (default 5) while one worker (concurrency 100, noop handler) drains
 * A. The figure is B's pickup (handler start minus submit call), for taskloom with fairness on,
 * with fairness off, and BullMQ (open source: no groups) in the same run. Then the cost of
 * fairness on a plain drain: `--drain` tasks (default 50,000) spread over 10 tenants, drained with
 * fairness on and off. Deletes only the keys of the queues it made.
 */
import { Queue as BullQueue, Worker as BullWorker } from 'bullmq'
import { z } from 'zod'
import { createQueue, createWorker, defineTask, type Queue } from '../src/index.js'
import { numericArgs } from './cli-args.js'
import { RedisAdmin } from './redis-admin.js'
import { fmtInt, fmtMs, type LatencySummary, summarize } from './stats.js'

const args = numericArgs()
const REDIS = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const BACKLOG = args.backlog ?? 200_000
const EVERY_MS = args.every ?? 10
const SECONDS = args.seconds ?? 5
const DRAIN = args.drain ?? 50_000
const CONCURRENCY = 100
const CHUNK = 5000
const run = `bench-noisy-${Date.now().toString(36)}`
const silent = { debug() {}, info() {}, warn: console.error, error: console.error }
const noop = defineTask({ name: 'noop', input: z.object({ t: z.number(), b: z.boolean() }) })

interface Side {
  /** Bulk-loads `n` tasks of tenant `tenant` (untimed). */
  load(n: number, tenant: string): Promise<void>
  submitB(t: number): Promise<void>
  /** Starts a worker calling `onStart` with each task's input. */
  start(onStart: (input: { t: number; b: boolean }) => void): Promise<() => Promise<void>>
  close(): Promise<void>
}

function taskloomSide(name: string, fair: boolean): Side {
  const queue: Queue = createQueue({
    name,
    redis: REDIS,
    logger: silent,
    ...(fair ? { fairness: 'tenant' as const } : { fairness: false as const }),
  })
  return {
    async load(n, tenant) {
      for (let at = 0; at < n; at += CHUNK) {
        const t = performance.now()
        const size = Math.min(CHUNK, n - at)
        await queue.submitMany(
          Array.from({ length: size }, () => ({
            task: noop,
            input: { t, b: false },
            options: { tenantId: tenant },
          })),
        )
      }
    },
    async submitB(t) {
      await queue.submit(noop, { t, b: true }, { tenantId: 'b' })
    },
    async start(onStart) {
      const worker = createWorker({ queue, concurrency: CONCURRENCY, logger: silent })
      worker.handle(noop, (input) => onStart(input))
      await worker.start()
      return () => worker.close({ graceMs: 10_000 })
    },
    close: () => queue.close(),
  }
}

function bullSide(name: string): Side {
  const u = new URL(REDIS)
  const connection = { host: u.hostname, port: Number(u.port || 6379), maxRetriesPerRequest: null }
  const queue = new BullQueue(name, { connection, defaultJobOptions: { removeOnComplete: true } })
  return {
    async load(n) {
      for (let at = 0; at < n; at += CHUNK) {
        const t = performance.now()
        const size = Math.min(CHUNK, n - at)
        await queue.addBulk(Array.from({ length: size }, () => ({ name: 'noop', data: { t, b: false } })))
      }
    },
    async submitB(t) {
      await queue.add('noop', { t, b: true })
    },
    async start(onStart) {
      const worker = new BullWorker(name, async (job) => onStart(job.data), {
        connection,
        concurrency: CONCURRENCY,
      })
      await worker.waitUntilReady()
      return () => worker.close()
    },
    close: () => queue.close(),
  }
}

/** B's pickup while A drains; answers B's summary and how many of A's tasks ran meanwhile. */
async function noisy(side: Side): Promise<LatencySummary & { aDone: number }> {
  await side.load(BACKLOG, 'a')
  const samples: number[] = []
  let aDone = 0
  const stop = await side.start((input) => {
    if (input.b) samples.push(performance.now() - input.t)
    else aDone++
  })
  const total = Math.round((SECONDS * 1000) / EVERY_MS)
  const t0 = performance.now()
  const submits: Promise<void>[] = []
  for (let i = 0; i < total; i++) {
    const due = t0 + i * EVERY_MS
    const wait = due - performance.now()
    if (wait > 0) await new Promise((r) => setTimeout(r, wait))
    submits.push(side.submitB(performance.now()))
  }
  await Promise.all(submits)
  // B's last tasks may still wait behind A (fairness off): wait for them, bounded.
  const deadline = performance.now() + 120_000
  while (samples.length < total && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  const aAtEnd = aDone
  await stop()
  if (samples.length < total) throw new Error(`only ${samples.length}/${total} of B's tasks ran`)
  return { ...summarize(samples), aDone: aAtEnd }
}

/** Plain drain: `DRAIN` tasks over 10 tenants; answers tasks/s. */
async function drain(side: Side): Promise<number> {
  for (let i = 0; i < 10; i++) await side.load(DRAIN / 10, `t${i}`)
  let done = 0
  let finished: () => void = () => {}
  const all = new Promise<void>((r) => {
    finished = r
  })
  const t0 = performance.now()
  const stop = await side.start(() => {
    if (++done === DRAIN) finished()
  })
  await all
  const perSec = DRAIN / ((performance.now() - t0) / 1000)
  await stop()
  return perSec
}

const admin = new RedisAdmin(REDIS)
let sequence = 0
async function measure<T>(
  label: string,
  make: (name: string) => Side,
  fn: (s: Side) => Promise<T>,
): Promise<T> {
  const name = `${run}-${++sequence}`
  const side = make(name)
  console.error(`${label}…`)
  try {
    return await fn(side)
  } finally {
    await side.close()
    await admin.deleteMatching(`tl:{${name}}:*`)
    await admin.deleteMatching(`bull:${name}:*`)
  }
}

try {
  const rows: string[] = []
  const fairOn = await measure('noisy: fairness on', (n) => taskloomSide(n, true), noisy)
  const fairOff = await measure('noisy: fairness off', (n) => taskloomSide(n, false), noisy)
  const bull = await measure('noisy: BullMQ', bullSide, noisy)
  const line = (label: string, s: LatencySummary & { aDone: number }) =>
    `| ${label} | ${fmtMs(s.p50)} | ${fmtMs(s.p99)} | ${fmtMs(s.max)} | ${fmtInt(s.aDone)} |`
  rows.push(
    `B submits one task every ${EVERY_MS} ms for ${SECONDS} s while A drains ${fmtInt(BACKLOG)} ready tasks (concurrency ${CONCURRENCY}):`,
    '',
    "| | B's pickup p50 ms | p99 ms | max ms | A's tasks run meanwhile |",
    '|---|---:|---:|---:|---:|',
    line('taskloom, fairness on', fairOn),
    line('taskloom, fairness off', fairOff),
    line('BullMQ (no groups)', bull),
  )
  const drainOn = await measure('drain: fairness on', (n) => taskloomSide(n, true), drain)
  const drainOff = await measure('drain: fairness off', (n) => taskloomSide(n, false), drain)
  rows.push(
    '',
    `Plain drain, ${fmtInt(DRAIN)} tasks over 10 tenants, concurrency ${CONCURRENCY}:`,
    '',
    '| | tasks/s |',
    '|---|---:|',
    `| fairness on | ${fmtInt(drainOn)} |`,
    `| fairness off | ${fmtInt(drainOff)} |`,
    `| on / off | ${(drainOn / drainOff).toFixed(2)} |`,
  )
  console.log(rows.join('\n'))
} catch (error) {
  console.error('bench failed:', error)
  process.exitCode = 1
} finally {
  await admin.close()
}

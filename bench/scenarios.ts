/**
 * The four figures, each written once against `Driver` and run for every library on a fresh,
 * uniquely named queue whose keys are deleted afterwards.
 */
import { PerformanceObserver } from 'node:perf_hooks'
import type { BenchConfig } from './config.js'
import { type CpuSeconds, type CpuSources, startCpuMeter } from './cpu.js'
import type { BenchInput, Driver, QueueHandle, WorkerHandle } from './driver.js'
import { collectGarbage } from './gc.js'
import type { RedisAdmin } from './redis-admin.js'
import { type LatencySummary, percentile, summarize } from './stats.js'

export interface Context {
  config: BenchConfig
  admin: RedisAdmin
  /** Prefix of every queue name this run creates: `bench-<run id>-`. */
  prefix: string
  /** Where the submit figure reads each server's CPU time. */
  cpu: CpuSources
  progress(message: string): void
}

export interface SubmitResult {
  perSec: number
  /** CPU seconds each process used during the timed submits. */
  cpu: CpuSeconds
}
export interface DrainResult {
  perSec: number
  /** Durable mode only: from the last completion event until the store showed every task completed. */
  store?: StoreCatchUp
}
export interface StoreCatchUp {
  /** Milliseconds from the last handler's completion to the store's completed count reaching n. */
  lagMs: number
  /** Tasks the store did not show as completed yet when the last handler finished. */
  behindAtEnd: number
}
export interface LatencyResult extends LatencySummary {
  /** Rate the producer actually achieved, tasks/s. */
  rate: number
  /** How noisy the box was meanwhile (these do not depend on the library much). */
  noise: Noise
}
export interface Noise {
  /** p99 of how late the producer's 1 ms timer fired: time this process waited for a CPU. */
  timerLateP99: number
  /** p99 round trip of a PING every 5 ms on a separate connection: how busy Redis was. */
  pingP99: number
  /** Longest garbage-collection pause of this process. */
  gcMax: number
}
export interface FlatResult {
  smallPerSec: number
  largePerSec: number
  /** `used_memory` growth per queued task while loading the large backlog. */
  bytesPerTask: number
}

let sequence = 0

/** Opens a fresh queue, runs `fn`, closes the handle and deletes the queue's keys whatever happens. */
async function withQueue<T>(
  ctx: Context,
  driver: Driver,
  tag: string,
  fn: (q: QueueHandle) => Promise<T>,
): Promise<T> {
  const name = `${ctx.prefix}${tag}-${++sequence}-${driver.id}`
  const q = await driver.open(name)
  try {
    return await fn(q)
  } finally {
    try {
      await q.close()
    } finally {
      try {
        await ctx.admin.deleteMatching(driver.keyPattern(name))
      } finally {
        await driver.cleanup?.(name)
      }
    }
  }
}

/** Counts completions; `until(n)` resolves at the n-th and rejects on the first error or a timeout. */
class Completions {
  done = 0
  private target = Number.POSITIVE_INFINITY
  private settle: ((error?: unknown) => void) | undefined
  private error: unknown

  readonly onCompleted = (): void => {
    this.done += 1
    if (this.done >= this.target) this.settle?.()
  }

  readonly onError = (error: unknown): void => {
    this.error ??= error ?? new Error('unknown worker error')
    this.settle?.(this.error)
  }

  until(target: number, timeoutMs: number, what: string): Promise<void> {
    if (this.error) return Promise.reject(this.error)
    if (this.done >= target) return Promise.resolve()
    this.target = target
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          this.settle?.(
            new Error(`timed out after ${timeoutMs} ms: ${what} (${this.done}/${target} completed)`),
          ),
        timeoutMs,
      )
      this.settle = (error) => {
        clearTimeout(timer)
        this.settle = undefined
        this.target = Number.POSITIVE_INFINITY
        if (error) reject(error)
        else resolve()
      }
    })
  }

  /** Throws if a worker reported an error at any point. */
  check(): void {
    if (this.error) throw this.error
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))
const timeoutFor = (tasks: number) => 60_000 + tasks * 2

async function expectCounts(q: QueueHandle, unfinished: number, what: string): Promise<void> {
  const c = await q.counts()
  if (c.unfinished !== unfinished || c.failed !== 0) {
    throw new Error(
      `${what}: expected ${unfinished} unfinished and 0 failed, the queue counts ${JSON.stringify(c)}`,
    )
  }
}

/**
 * Runs `worker` until `count` completions, timing from `start()`; closes it whatever happens.
 * `afterLast` runs (untimed) as soon as the last completion is seen, before the worker closes.
 */
async function timedDrain(
  q: QueueHandle,
  count: number,
  concurrency: number,
  what: string,
  afterLast?: (at: number) => Promise<void>,
): Promise<number> {
  const completions = new Completions()
  const w = await q.worker({
    concurrency,
    onCompleted: completions.onCompleted,
    onError: completions.onError,
  })
  let seconds: number
  try {
    collectGarbage()
    const t0 = performance.now()
    w.start()
    await completions.until(count, timeoutFor(count), what)
    const end = performance.now()
    seconds = (end - t0) / 1000
    await afterLast?.(end)
  } finally {
    await w.close()
  }
  completions.check()
  return count / seconds
}

/** submit: `submitN` submits from `submitInFlight` concurrent loops, each awaiting its submit. */
export async function submitFigure(
  ctx: Context,
  driver: Driver,
  n = ctx.config.submitN,
): Promise<SubmitResult> {
  return withQueue(ctx, driver, 'submit', async (q) => {
    let next = 0
    const loop = async () => {
      while (next < n) {
        next += 1
        await q.submit({ t: performance.now() })
      }
    }
    collectGarbage()
    const cpuSince = await startCpuMeter(ctx.cpu)
    const t0 = performance.now()
    await Promise.all(Array.from({ length: ctx.config.submitInFlight }, loop))
    const seconds = (performance.now() - t0) / 1000
    const cpu = await cpuSince()
    await expectCounts(q, n, `${driver.label} submit`)
    return { perSec: n / seconds, cpu }
  })
}

/** drain: `drainN` pre-loaded tasks (untimed), then the time until one worker has completed them all. */
export async function drainFigure(ctx: Context, driver: Driver, n = ctx.config.drainN): Promise<DrainResult> {
  return withQueue(ctx, driver, 'drain', async (q) => {
    await q.load(n)
    await expectCounts(q, n, `${driver.label} drain pre-load`)
    const storeCompleted = q.storeCompleted?.bind(q)
    let store: StoreCatchUp | undefined
    const perSec = await timedDrain(
      q,
      n,
      ctx.config.concurrency,
      `${driver.label} drain`,
      storeCompleted &&
        (async (end) => {
          store = await storeCatchUp(storeCompleted, n, end, `${driver.label} drain`)
        }),
    )
    await expectCounts(q, 0, `${driver.label} drain`)
    return { perSec, store }
  })
}

/**
 * Polls the store's completed count every 2 ms until it reaches `n`; the lag is measured from
 * `end` (the last completion event) to the answer of the first query that saw all `n`.
 */
async function storeCatchUp(
  completed: () => Promise<number>,
  n: number,
  end: number,
  what: string,
): Promise<StoreCatchUp> {
  const first = await completed()
  let seen = first
  const deadline = end + 60_000
  while (seen < n) {
    if (performance.now() > deadline)
      throw new Error(`${what}: the store shows ${seen}/${n} completed 60 s after the last completion`)
    await sleep(2)
    seen = await completed()
  }
  if (seen !== n) throw new Error(`${what}: the store shows ${seen} completed for ${n} tasks`)
  return { lagMs: performance.now() - end, behindAtEnd: n - first }
}

/**
 * latency: a producer submits at a steady `latencyRate` per second for `latencySeconds` while an
 * idle worker waits; each sample is handler start minus submit call, both `performance.now()`.
 */
export async function latencyFigure(ctx: Context, driver: Driver): Promise<LatencyResult> {
  const { latencyRate: rate, latencySeconds: seconds, concurrency } = ctx.config
  const total = Math.round(rate * seconds)
  return withQueue(ctx, driver, 'latency', async (q) => {
    const samples: number[] = []
    const completions = new Completions()
    const onStart = (input: BenchInput) => void samples.push(performance.now() - input.t)
    const w: WorkerHandle = await q.worker({
      concurrency,
      onStart,
      onCompleted: completions.onCompleted,
      onError: completions.onError,
    })
    let achieved: number
    const late: number[] = []
    const pings: number[] = []
    let gcMax = 0
    const gc = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) gcMax = Math.max(gcMax, e.duration)
    })
    try {
      collectGarbage()
      w.start()
      await sleep(250) // let the worker reach its idle wait
      gc.observe({ entryTypes: ['gc'] })
      const submits: Promise<void>[] = []
      let sent = 0
      let producing = true
      const pinger = (async () => {
        while (producing) {
          const t = performance.now()
          await ctx.admin.redis.ping()
          pings.push(performance.now() - t)
          await sleep(5)
        }
      })()
      const t0 = performance.now()
      try {
        while (sent < total) {
          completions.check()
          const due = Math.min(total, Math.floor(((performance.now() - t0) * rate) / 1000) + 1)
          while (sent < due) {
            sent += 1
            submits.push(q.submit({ t: performance.now() }))
          }
          const before = performance.now()
          await sleep(1)
          late.push(performance.now() - before - 1)
        }
      } finally {
        producing = false
        await pinger
      }
      achieved = total / ((performance.now() - t0) / 1000)
      await Promise.all(submits)
      await completions.until(total, 30_000, `${driver.label} latency`)
    } finally {
      gc.disconnect()
      await w.close()
    }
    completions.check()
    if (samples.length !== total)
      throw new Error(`${driver.label} latency: ${samples.length} samples for ${total} tasks`)
    await expectCounts(q, 0, `${driver.label} latency`)
    const p99 = (xs: number[]) => percentile(Float64Array.from(xs).sort(), 99)
    return {
      ...summarize(samples),
      rate: achieved,
      noise: { timerLateP99: p99(late), pingP99: p99(pings), gcMax },
    }
  })
}

/**
 * flat: a `flatSlice` drained from the head of a queue with `flatSmall`, then `flatLarge`, tasks
 * queued behind it. The large load also gives Redis bytes per queued task.
 */
export async function flatFigure(ctx: Context, driver: Driver): Promise<FlatResult> {
  const { flatSmall, flatLarge, flatSlice, concurrency } = ctx.config
  const run = (backlog: number) =>
    withQueue(ctx, driver, `flat${backlog}`, async (q) => {
      const total = flatSlice + backlog
      await ctx.admin.settle()
      const before = await ctx.admin.usedMemory()
      ctx.progress(`  loading ${total.toLocaleString('en-US')} tasks`)
      await q.load(total)
      const after = await ctx.admin.usedMemory()
      await expectCounts(q, total, `${driver.label} flat pre-load`)
      const perSec = await timedDrain(q, flatSlice, concurrency, `${driver.label} flat slice`)
      return { perSec, bytesPerTask: (after - before) / total }
    })
  const small = await run(flatSmall)
  const large = await run(flatLarge)
  return { smallPerSec: small.perSec, largePerSec: large.perSec, bytesPerTask: large.bytesPerTask }
}

/** Unreported: runs each code path once so both libraries are measured JIT-warm. */
export async function warmUp(ctx: Context, driver: Driver): Promise<void> {
  const n = ctx.config.warmupN
  if (n === 0) return
  await submitFigure(ctx, driver, n)
  await drainFigure(ctx, driver, n)
}

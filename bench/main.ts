/**
 * Runs every scenario for taskloom (Redis-only and durable mode) and BullMQ on fresh queues, prints the markdown table to stdout
 * (progress goes to stderr) and writes it to `<out>/latest.md` plus `<out>/latest.json`.
 * Exits non-zero on any error; deletes only the keys (and store rows) of queues it created, and drops
 * the durable store's bench schema at the end.
 */
import { execFileSync } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import pg from 'pg'
import { bullmqDriver } from './bullmq.js'
import { type BenchConfig, type Lib, parseConfig, type Scenario } from './config.js'
import { type CpuSeconds, localPostmaster } from './cpu.js'
import type { Driver } from './driver.js'
import { RedisAdmin } from './redis-admin.js'
import { atLeastBull, flat, type Meta, type Row, renderReport, under } from './report.js'
import { type Context, drainFigure, flatFigure, latencyFigure, submitFigure, warmUp } from './scenarios.js'
import { fmtInt } from './stats.js'
import { durableDriver, taskloomDriver } from './taskloom.js'

/** Samples per figure key, per driver id. */
type Samples = Record<string, Record<string, number[]>>

export async function main(argv: string[]): Promise<void> {
  let config: BenchConfig
  try {
    config = parseConfig(argv)
  } catch (error) {
    console.error((error as Error).message)
    process.exitCode = 2
    return
  }
  const started = performance.now()
  const loadStart = os.loadavg()
  const runId = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`
  const prefix = `bench-${runId}-`
  const admin = new RedisAdmin(config.redisUrl)
  const make: Record<Lib, () => Driver> = {
    tl: () => taskloomDriver(config.redisUrl),
    tlpg: () => durableDriver(config.redisUrl, config.postgresUrl, config.postgresSchema),
    bull: () => bullmqDriver(config.redisUrl),
  }
  // Column order is fixed (taskloom, durable, BullMQ) whatever order --libs lists them in.
  const drivers: Driver[] = (['tl', 'tlpg', 'bull'] as const)
    .filter((l) => config.libs.includes(l))
    .map((l) => make[l]())
  const ctx: Context = {
    config,
    admin,
    prefix,
    cpu: { redis: admin.redis },
    progress: (m) => console.error(m),
  }

  let interrupted = false
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) process.exit(130)
    interrupted = true
    console.error(`\n${signal}: deleting this run's keys, then exiting (again to exit at once)`)
    sweep(admin, drivers, prefix).finally(() => process.exit(130))
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)

  try {
    const redis = await admin.serverVersion()
    const postgres = config.libs.includes('tlpg') ? await postgresVersion(config.postgresUrl) : 'not used'
    if (config.libs.includes('tlpg')) ctx.cpu.postmaster = await localPostmaster(config.postgresUrl)
    const samples: Samples = {}
    const add = (key: string, driver: Driver, value: number) => {
      samples[key] ??= {}
      const byLib = samples[key]
      byLib[driver.id] ??= []
      byLib[driver.id]!.push(value)
    }
    for (const d of drivers) {
      ctx.progress(`warm-up: ${d.label}`)
      await warmUp(ctx, d)
    }
    for (let round = 0; round < config.rounds; round++) {
      // Alternate who goes first, so neither library always runs on a cooler (or hotter) box.
      const order = round % 2 === 0 ? drivers : [...drivers].reverse()
      for (const scenario of config.only) {
        for (const d of order) {
          if (d.scenarios && !d.scenarios.includes(scenario)) continue
          ctx.progress(`round ${round + 1}/${config.rounds}: ${scenario}: ${d.label}`)
          await runScenario(ctx, scenario, d, add)
        }
      }
    }
    const meta: Meta = {
      date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      command: commandLine(argv),
      cpu: os.cpus()[0]?.model.trim() ?? 'unknown CPU',
      cores: os.availableParallelism(),
      memGb: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
      redis,
      postgres,
      bullmq: packageVersion('bullmq'),
      taskloom: gitDescription(),
      loadStart,
      loadEnd: os.loadavg(),
      seconds: (performance.now() - started) / 1000,
    }
    const columns = drivers.map((d) => ({ id: d.id, label: d.label }))
    const report = renderReport(meta, config, columns, rows(config, samples))
    console.log(report)
    await mkdir(config.outDir, { recursive: true })
    await writeFile(path.join(config.outDir, 'latest.md'), report)
    await writeFile(
      path.join(config.outDir, 'latest.json'),
      `${JSON.stringify({ meta, config, samples }, null, 2)}\n`,
    )
    ctx.progress(`wrote ${path.join(config.outDir, 'latest.md')} and latest.json`)
  } catch (error) {
    console.error('bench failed:', error)
    process.exitCode = 1
  } finally {
    try {
      await sweep(admin, drivers, prefix)
    } catch (error) {
      console.error('cleanup failed:', error)
      process.exitCode = 1
    }
    for (const d of drivers) {
      try {
        await d.dispose?.()
      } catch (error) {
        console.error(`cleanup of ${d.label} failed:`, error)
        process.exitCode = 1
      }
    }
    await admin.close()
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    // Everything is closed, so the process should end by itself; if a handle leaks, say so and end anyway.
    setTimeout(() => {
      console.error(
        'bench: the process did not exit 10 s after closing everything (a leaked handle); exiting',
      )
      process.exit(process.exitCode ?? 1)
    }, 10_000).unref()
  }
}

async function runScenario(
  ctx: Context,
  scenario: Scenario,
  d: Driver,
  add: (key: string, d: Driver, value: number) => void,
): Promise<void> {
  switch (scenario) {
    case 'submit': {
      const r = await submitFigure(ctx, d)
      add('submit', d, r.perSec)
      const perTask = (seconds: number) => (seconds * 1e6) / ctx.config.submitN
      add('cpuNode', d, perTask(r.cpu.node))
      add('cpuRedis', d, perTask(r.cpu.redis))
      if (r.cpu.postgres !== undefined) add('cpuPostgres', d, perTask(r.cpu.postgres))
      add('cpuTotal', d, perTask(totalSeconds(r.cpu)))
      ctx.progress(
        `  ${fmtInt(r.perSec)} submits/s; CPU per submit ${perTask(r.cpu.node).toFixed(1)} µs here, ` +
          `${perTask(r.cpu.redis).toFixed(1)} µs Redis` +
          (r.cpu.postgres === undefined ? '' : `, ${perTask(r.cpu.postgres).toFixed(1)} µs PostgreSQL`),
      )
      return
    }
    case 'drain': {
      const r = await drainFigure(ctx, d)
      add('drain', d, r.perSec)
      if (r.store) {
        add('storeLag', d, r.store.lagMs)
        add('storeBehind', d, r.store.behindAtEnd)
      }
      ctx.progress(
        `  ${fmtInt(r.perSec)} tasks/s${r.store ? `; store caught up ${r.store.lagMs.toFixed(0)} ms after the last completion (${fmtInt(r.store.behindAtEnd)} behind then)` : ''}`,
      )
      return
    }
    case 'latency': {
      const r = await latencyFigure(ctx, d)
      add('p50', d, r.p50)
      add('p95', d, r.p95)
      add('p99', d, r.p99)
      add('max', d, r.max)
      add('rate', d, r.rate)
      add('timerLate', d, r.noise.timerLateP99)
      add('ping', d, r.noise.pingP99)
      add('gc', d, r.noise.gcMax)
      ctx.progress(
        `  p50 ${r.p50.toFixed(2)} p95 ${r.p95.toFixed(2)} p99 ${r.p99.toFixed(2)} max ${r.max.toFixed(2)} ms at ${fmtInt(r.rate)}/s; ` +
          `noise: 1 ms timer late p99 ${r.noise.timerLateP99.toFixed(2)}, PING p99 ${r.noise.pingP99.toFixed(2)}, GC max ${r.noise.gcMax.toFixed(1)} ms`,
      )
      return
    }
    case 'flat': {
      const r = await flatFigure(ctx, d)
      add('flatSmall', d, r.smallPerSec)
      add('flatLarge', d, r.largePerSec)
      add('flatRatio', d, r.largePerSec / r.smallPerSec)
      add('bytes', d, r.bytesPerTask)
      ctx.progress(
        `  slice ${fmtInt(r.smallPerSec)} vs ${fmtInt(r.largePerSec)} tasks/s; ${fmtInt(r.bytesPerTask)} bytes/task`,
      )
      return
    }
  }
}

function rows(c: BenchConfig, s: Samples): Row[] {
  const out: Row[] = []
  const row = (key: string, r: Omit<Row, 'samples'>) => {
    if (s[key]) out.push({ ...r, samples: s[key] })
  }
  const lat = `pickup latency at ${fmtInt(c.latencyRate)}/s for ${c.latencySeconds} s`
  row('submit', {
    figure: `submit: submits/s, ${c.submitInFlight} in flight, ${fmtInt(c.submitN)} submits`,
    better: 'higher',
    unit: 'int',
    target: atLeastBull,
  })
  const cpu = 'submit: CPU per submit, µs'
  row('cpuNode', { figure: `${cpu}, this process (the library's client side)`, better: 'lower', unit: 'us' })
  row('cpuRedis', { figure: `${cpu}, Redis server`, better: 'lower', unit: 'us' })
  row('cpuPostgres', {
    figure: `${cpu}, PostgreSQL server (all its processes; BullMQ's column: the box's background)`,
    better: 'lower',
    unit: 'us',
  })
  row('cpuTotal', { figure: `${cpu}, all three`, better: 'lower', unit: 'us' })
  row('drain', {
    figure: `drain: tasks/s, ${fmtInt(c.drainN)} pre-loaded, concurrency ${c.concurrency}`,
    better: 'higher',
    unit: 'int',
    target: atLeastBull,
  })
  row('storeLag', {
    figure: 'drain, durable: store shows all completed, ms after the last completion',
    better: 'lower',
    unit: 'ms',
    noRatio: true,
  })
  row('storeBehind', {
    figure: 'drain, durable: tasks not yet completed in the store at the last completion',
    better: 'lower',
    unit: 'int',
    noRatio: true,
  })
  row('p50', { figure: `${lat}: p50 ms`, better: 'lower', unit: 'ms' })
  row('p95', { figure: `${lat}: p95 ms`, better: 'lower', unit: 'ms' })
  row('p99', { figure: `${lat}: p99 ms`, better: 'lower', unit: 'ms', target: under(10) })
  row('max', { figure: `${lat}: max ms`, better: 'lower', unit: 'ms' })
  row('rate', {
    figure: 'latency: producer rate achieved, tasks/s',
    better: 'higher',
    unit: 'int',
    noRatio: true,
  })
  const noise = 'noise during the latency run'
  row('timerLate', {
    figure: `${noise}: 1 ms timer fired late by, p99 ms`,
    better: 'lower',
    unit: 'ms',
    noRatio: true,
  })
  row('ping', {
    figure: `${noise}: Redis PING round trip, p99 ms`,
    better: 'lower',
    unit: 'ms',
    noRatio: true,
  })
  row('gc', {
    figure: `${noise}: longest GC pause (whole process), ms`,
    better: 'lower',
    unit: 'ms',
    noRatio: true,
  })
  const slice = `flat: tasks/s draining ${fmtInt(c.flatSlice)}`
  row('flatSmall', {
    figure: `${slice} with ${fmtInt(c.flatSmall)} queued behind`,
    better: 'higher',
    unit: 'int',
  })
  row('flatLarge', {
    figure: `${slice} with ${fmtInt(c.flatLarge)} queued behind`,
    better: 'higher',
    unit: 'int',
  })
  row('flatRatio', {
    figure: `flat: ${fmtInt(c.flatLarge)}-queued rate / ${fmtInt(c.flatSmall)}-queued rate`,
    better: 'higher',
    unit: 'ratio',
    target: flat,
  })
  row('bytes', {
    figure: 'Redis bytes per queued task (used_memory delta / tasks)',
    better: 'lower',
    unit: 'int',
  })
  return out
}

function totalSeconds(cpu: CpuSeconds): number {
  return cpu.node + cpu.redis + (cpu.postgres ?? 0)
}

async function postgresVersion(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const r = await client.query<{ v: string }>('select current_setting($$server_version$$) as v')
    return r.rows[0]?.v.split(' ')[0] ?? 'unknown'
  } finally {
    await client.end()
  }
}

/** Deletes every key of every queue this run created (by their shared name prefix). */
async function sweep(admin: RedisAdmin, drivers: Driver[], prefix: string): Promise<void> {
  for (const d of drivers) await admin.deleteMatching(d.keyPattern(`${prefix}*`))
}

function commandLine(argv: string[]): string {
  const env = Object.entries(process.env)
    .filter(([k]) => k.startsWith('BENCH_'))
    .map(([k, v]) => `${k}=${v} `)
    .join('')
  return `${env}npm run bench${argv.length ? ` -- ${argv.join(' ')}` : ''}`
}

function packageVersion(name: string): string {
  try {
    return (createRequire(import.meta.url)(`${name}/package.json`) as { version: string }).version
  } catch {
    return 'unknown'
  }
}

function gitDescription(): string {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { encoding: 'utf8' }).trim()
    return dirty ? `${sha} + uncommitted src/ changes` : sha
  } catch {
    return 'unknown'
  }
}

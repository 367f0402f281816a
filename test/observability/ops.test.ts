/**
 * The operations files: the alert rules pass promtool's check and unit tests, every dashboard query
 * is valid PromQL, and every metric the dashboards and rules name is present in a real /metrics
 * scrape of a running system (queue and worker on Redis, a PostgreSQL pool, the HTTP metrics).
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { defineTask, NonRetryableError } from '../../src/index.js'
import { createMetrics } from '../../src/observability/metrics.js'
import { internals } from '../../src/queue/internal.js'
import { waitForTask } from '../../src/testing.js'
import { backends, trackWorker, until } from '../helpers/backends.js'
import { DATABASE_URL, hasPostgres } from '../helpers/services.js'

const RULES = 'ops/prometheus/alerts.yml'
const RULE_TESTS = 'ops/prometheus/alerts.test.yml'
const DASHBOARDS = 'ops/grafana'

function hasPromtool(): boolean {
  if (spawnSync('promtool', ['--version']).status === 0) return true
  const message = 'promtool is not installed (Debian package prometheus; .ci/run installs it)'
  if (process.env.CI) throw new Error(`${message}; CI is set, so this is a failure, not a skip`)
  console.warn(`\n!!!!!!!!\n!!! SKIPPING: ${message}\n!!!!!!!!\n`)
  return false
}

function promtool(...args: string[]) {
  const run = spawnSync('promtool', args, { encoding: 'utf8' })
  return { ok: run.status === 0, output: `${run.stdout}${run.stderr}` }
}

interface Panel {
  title: string
  targets?: { expr: string }[]
  fieldConfig?: { defaults?: { thresholds?: { steps: unknown[] } } }
}
interface Dashboard {
  title: string
  uid: string
  panels: Panel[]
  templating: { list: { name: string }[] }
}

function dashboards(): Dashboard[] {
  return readdirSync(DASHBOARDS)
    .filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(readFileSync(join(DASHBOARDS, f), 'utf8')) as Dashboard)
}

/** Dashboard queries with Grafana's variables replaced by what they expand to. */
function dashboardExprs(): string[] {
  return dashboards().flatMap((d) =>
    d.panels.flatMap((p) =>
      (p.targets ?? []).map((t) => t.expr.replace(/\$__rate_interval/g, '1m').replace(/\$[a-z_]+/g, '.*')),
    ),
  )
}

/** The `expr:` of every rule (inline or a `|` block). */
function ruleExprs(): string[] {
  const lines = readFileSync(RULES, 'utf8').split('\n')
  const out: string[] = []
  for (let i = 0; i < lines.length; i++) {
    const m = /^(\s*)expr:\s*(.*)$/.exec(lines[i]!)
    if (!m) continue
    if (m[2] !== '|') {
      out.push(m[2]!)
      continue
    }
    const block: string[] = []
    const indent = m[1]!.length
    while (
      i + 1 < lines.length &&
      (lines[i + 1]!.trim() === '' || /^\s*/.exec(lines[i + 1]!)![0].length > indent)
    )
      block.push(lines[++i]!)
    out.push(block.join('\n'))
  }
  return out
}

const PROMQL_WORDS = new Set(
  'sum min max avg count topk bottomk quantile stddev rate irate increase histogram_quantile sort sort_desc absent abs and or unless by without on ignoring group_left group_right bool offset inf nan'.split(
    ' ',
  ),
)

/** Metric names in PromQL: what is left after label matchers, label lists, ranges and functions. */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/"[^"]*"/g, ' ')
  const names = stripped.match(/[a-zA-Z_:][a-zA-Z0-9_:]*/g) ?? []
  return names.filter((n) => !PROMQL_WORDS.has(n.toLowerCase()))
}

const promtoolThere = hasPromtool()

describe.skipIf(!promtoolThere)('alert rules and dashboards (promtool)', () => {
  it('the rules file passes promtool check rules', () => {
    const { ok, output } = promtool('check', 'rules', RULES)
    expect(output).toContain('SUCCESS')
    expect(ok, output).toBe(true)
  })

  it('the rules pass their promtool unit tests', () => {
    const { ok, output } = promtool('test', 'rules', RULE_TESTS)
    expect(ok, output).toBe(true)
  })

  it('has the spec’s alerts', () => {
    const text = readFileSync(RULES, 'utf8')
    for (const alert of [
      'TaskloomQueueDepthHigh',
      'TaskloomQueueDepthCritical',
      'TaskloomWorkersBelowMinimum',
      'TaskloomTaskFailureRateHigh',
      'TaskloomApiErrorRateHigh',
      'TaskloomPickupLatencyHigh',
      'TaskloomDeadLetterQueueLarge',
      'TaskloomDatabasePoolExhausted',
      'TaskloomWorkerUtilizationHigh',
    ])
      expect(text).toContain(`alert: ${alert}`)
  })

  it('every dashboard query is valid PromQL', () => {
    const exprs = dashboardExprs()
    expect(exprs.length).toBeGreaterThan(30)
    const dir = mkdtempSync(join(tmpdir(), 'taskloom-dash-'))
    const file = join(dir, 'dashboard-queries.yml')
    const rules = exprs.map(
      (e, i) => `      - record: dashboard:query_${i}\n        expr: ${JSON.stringify(e)}`,
    )
    writeFileSync(file, `groups:\n  - name: dashboards\n    rules:\n${rules.join('\n')}\n`)
    const { ok, output } = promtool('check', 'rules', file)
    expect(ok, output).toBe(true)
  })
})

describe('dashboards', () => {
  it('are the spec’s four, each with panels and queries', () => {
    const byTitle = new Map(dashboards().map((d) => [d.title, d]))
    for (const title of [
      'taskloom / System overview',
      'taskloom / Task performance',
      'taskloom / API performance',
      'taskloom / Tenant usage',
    ]) {
      const d = byTitle.get(title)
      expect(d, title).toBeDefined()
      expect(d!.panels.length).toBeGreaterThanOrEqual(4)
      for (const p of d!.panels) expect(p.targets?.length, `${title}: ${p.title}`).toBeGreaterThan(0)
    }
    expect(new Set(dashboards().map((d) => d.uid)).size).toBe(4)
  })

  it('have job and instance variables, rates over $__rate_interval, thresholds, and success rate by task type', () => {
    for (const d of dashboards()) {
      const vars = d.templating.list.map((v) => v.name)
      expect(vars, d.title).toEqual(expect.arrayContaining(['job', 'instance']))
      const exprs = d.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr))
      for (const expr of exprs) {
        expect(expr, `${d.title}: a fixed 5m range`).not.toMatch(/\[5m\]/)
        expect(expr, `${d.title}: not filtered by job and instance`).toContain('instance=~"$instance"')
      }
      expect(
        d.panels.some((p) => (p.fieldConfig?.defaults?.thresholds?.steps.length ?? 0) > 1),
        `${d.title} has thresholds`,
      ).toBe(true)
    }
    const byType = dashboards()
      .flatMap((d) => d.panels)
      .find((p) => p.title === 'Success rate by task type')
    expect(byType?.targets?.[0]?.expr).toMatch(/sum by \(task_type\)/)
  })

  it('count queue-wide series once: each is taken as a max over the processes that export it', () => {
    const queueWide =
      /\b(task_queue_depth|task_oldest_ready_age_seconds|task_dlq_size|task_delayed_count|task_processing_count|circuit_breaker_state|tasks_submitted_total|tasks_completed_total|tasks_failed_total|task_attempts_failed_total|task_retries_total|task_lease_expirations_total|tasks_cancelled_total|tasks_dead_letter_retried_total)\b/g
    for (const expr of [...dashboardExprs(), ...ruleExprs()]) {
      const uses = expr.match(queueWide)?.length ?? 0
      const maxes = expr.match(/max by \(queue\b/g)?.length ?? 0
      expect(maxes, expr).toBeGreaterThanOrEqual(uses)
    }
  })
})

const redis = backends.find((b) => b.label === 'redis')!
const postgresUp = await hasPostgres()

describe.skipIf(!redis.available || !postgresUp)('a real /metrics scrape', () => {
  it('contains every metric the dashboards and alert rules name', async () => {
    const job = defineTask({ name: 'scraped', input: z.object({ mode: z.enum(['ok', 'flaky', 'dead']) }) })
    const queue = redis.queue()
    const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 2 })
    const metrics = createMetrics({ workers: async () => [{ status: 'ACTIVE' }] })
    metrics.observe(queue, { breakers: ['scraped'] })
    metrics.observePool(pool, { name: 'store' })
    const worker = trackWorker({ queue, concurrency: 2, backoff: { baseMs: 1, maxMs: 1, jitter: 0 } })
    metrics.observeWorker(worker)
    const flaky = new Set<string>()
    worker.handle(job, (input, ctx) => {
      if (input.mode === 'dead') throw new NonRetryableError('bad input')
      if (input.mode === 'flaky' && !flaky.has(ctx.taskId)) {
        flaky.add(ctx.taskId)
        throw new Error('transient')
      }
      return 'ok'
    })
    // What the HTTP adapter records per request and per 429.
    metrics.observeRequest('/tasks', 'POST', 201, 0.003)
    metrics.rateLimitHit('acme')
    const server = createServer((_req, res) => {
      metrics.render().then(
        ({ contentType, body }) => res.writeHead(200, { 'content-type': contentType }).end(body),
        (err: Error) => res.writeHead(500).end(err.message),
      )
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      await pool.query('SELECT 1')
      await worker.start()
      const tasks = await queue.submitMany(
        (['ok', 'flaky', 'dead'] as const).map((mode) => ({
          task: job,
          input: { mode },
          options: { tenantId: 'acme' },
        })),
      )
      for (const t of tasks) await waitForTask(queue, t.id)
      // A cancellation, a lease that expires (claimed by a worker that vanishes, reaped by the next
      // claim) and a task put back from the DLQ that fails again.
      const cancelled = await queue.submit(job, { mode: 'ok' }, { delayMs: 60_000 })
      await queue.cancel(cancelled.id)
      await worker.close()
      const broker = queue[internals].broker
      const stalled = await queue.submit(job, { mode: 'ok' })
      await broker.claim('ghost', 1, 50, Date.now())
      await new Promise((resolve) => setTimeout(resolve, 100))
      await broker.claim('reaper', 0, 50, Date.now())
      const dead = tasks[2]!
      await queue.dlq.retry(dead.id)
      const again = trackWorker({ queue, concurrency: 2 })
      again.handle(job, (input) => {
        if (input.mode === 'dead') throw new NonRetryableError('bad input')
        return 'ok'
      })
      await again.start()
      await waitForTask(queue, stalled.id)
      await until(async () => (await queue.get(dead.id))?.status === 'failed', 10_000, 'dead again')
      await again.close()
      await new Promise((resolve) => setTimeout(resolve, 300)) // past the reuse window of the reads

      const { port } = server.address() as AddressInfo
      const response = await fetch(`http://127.0.0.1:${port}/metrics`)
      expect(response.status).toBe(200)
      expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
      const body = await response.text()

      const named = new Set([...dashboardExprs(), ...ruleExprs()].flatMap(metricNames))
      // The extraction itself works: these are certainly referenced.
      for (const name of [
        'task_queue_depth',
        'worker_count',
        'api_request_duration_seconds_bucket',
        'db_pool_waiting_requests',
      ])
        expect(named).toContain(name)
      expect(named.size).toBeGreaterThan(15)
      const missing = [...named].filter((name) => !new RegExp(`^${name}[{ ]`, 'm').test(body))
      expect(missing, `metrics named in ops/ but absent from the scrape:\n${body}`).toEqual([])
      expect(body).toMatch(
        new RegExp(`^task_queue_depth\\{queue="${queue.name}",priority="critical"\\} 0$`, 'm'),
      )
      expect(body).toMatch(new RegExp(`^task_dlq_size\\{queue="${queue.name}"\\} 1$`, 'm'))
    } finally {
      await worker.close()
      server.close()
      await pool.end()
    }
  })
})

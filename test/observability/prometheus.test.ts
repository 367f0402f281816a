/**
 * The shipped alert rules and dashboard queries, evaluated by a real Prometheus server scraping two
 * processes that both observe one queue (this one and a child): the queue-wide series count once,
 * so the depth alerts fire at the true depth, not at twice it.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createQueue, defineTask, type Queue } from '../../src/index.js'
import { createMetrics } from '../../src/observability/metrics.js'
import { internals } from '../../src/queue/internal.js'
import { silent, until } from '../helpers/backends.js'
import { type PrivateRedis, startPrivateRedis } from '../helpers/private-redis.js'
import { hasRedis, uniqueName } from '../helpers/services.js'
import { spawnFixture } from '../helpers/spawn-fixture.js'

const job = defineTask({ name: 'prom-job', input: z.object({ n: z.number() }) })
/** Ready tasks: above the 50K warning, below the 100K critical (which twice the depth would pass). */
const NORMAL = 40_000
const HIGH = 20_000
const DEAD = 3

function hasPrometheus(): boolean {
  if (spawnSync('prometheus', ['--version']).status === 0) return true
  const message = 'the prometheus server is not installed (Debian package prometheus; .ci/run installs it)'
  if (process.env.CI) throw new Error(`${message}; CI is set, so this is a failure, not a skip`)
  console.warn(`\n!!!!!!!!\n!!! SKIPPING: ${message}\n!!!!!!!!\n`)
  return false
}

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

interface Sample {
  metric: Record<string, string>
  value: [number, string]
}

const run = (await hasRedis()) && hasPrometheus()

describe.skipIf(!run)('alert rules and dashboards on a real Prometheus scraping two processes', () => {
  let redis: PrivateRedis
  let queue: Queue
  let server: Server
  let child: ChildProcess
  let prometheus: ChildProcess
  let promUrl: string
  let dir: string
  let submittedAt: number

  async function query(expr: string): Promise<Sample[]> {
    const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`)
    const body = (await res.json()) as { status: string; error?: string; data: { result: Sample[] } }
    if (body.status !== 'success') throw new Error(`${expr}: ${body.error}`)
    return body.data.result
  }
  const scalar = async (expr: string) => {
    const r = await query(expr)
    expect(r, expr).toHaveLength(1)
    return Number(r[0]!.value[1])
  }
  async function firing(): Promise<{ labels: Record<string, string>; state: string }[]> {
    const res = await fetch(`${promUrl}/api/v1/alerts`)
    const body = (await res.json()) as {
      data: { alerts: { labels: Record<string, string>; state: string }[] }
    }
    return body.data.alerts.filter((a) => a.labels.queue === queue.name)
  }

  beforeAll(async () => {
    redis = await startPrivateRedis()
    queue = createQueue({ name: uniqueName(), redis: redis.url, logger: silent })
    // Three tasks dead-lettered, then 60,000 ready ones.
    const doomed = await queue.submitMany(
      Array.from({ length: DEAD }, (_, n) => ({
        task: job,
        input: { n },
        options: { priority: 'critical' as const },
      })),
    )
    const broker = queue[internals].broker
    const { tasks } = await broker.claim('prom-test', DEAD, 60_000, Date.now())
    expect(tasks.map((t) => t.id).sort()).toEqual(doomed.map((t) => t.id).sort())
    await broker.fail(
      tasks.map((t) => ({
        id: t.id,
        token: t.token,
        error: { name: 'Error', message: 'x' },
        outcome: 'error',
        retryAt: null,
      })),
      Date.now(),
    )
    submittedAt = Date.now()
    for (const [priority, total] of [
      ['normal', NORMAL],
      ['high', HIGH],
    ] as const) {
      for (let i = 0; i < total; i += 2000)
        await queue.submitMany(
          Array.from({ length: 2000 }, (_, n) => ({
            task: job,
            input: { n: i + n },
            options: { priority, tenantId: n % 2 === 0 ? 'acme' : 'globex' },
          })),
        )
    }

    // Process 1: this one.
    const metrics = createMetrics({ workers: () => queue.workers() })
    metrics.observe(queue)
    server = createServer((_req, res) => {
      metrics
        .render()
        .then(({ contentType, body }) => res.writeHead(200, { 'content-type': contentType }).end(body))
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    // Process 2: a child observing the same queue.
    child = spawnFixture('test/fixtures/metrics-exporter.ts', [redis.url, queue.name], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let out = ''
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString()
    })
    const childPort = Number(
      (await until(() => /listening (\d+)/.exec(out), 20_000, 'the child exporter'))[1],
    )

    // The shipped rules as they are, except that `for` is 0 s: the test cannot wait minutes.
    dir = mkdtempSync(join(tmpdir(), 'taskloom-prom-'))
    const rules = readFileSync('ops/prometheus/alerts.yml', 'utf8').replace(/^(\s+)for: \S+$/gm, '$1for: 0s')
    writeFileSync(join(dir, 'alerts.yml'), rules)
    const targets = [`127.0.0.1:${(server.address() as AddressInfo).port}`, `127.0.0.1:${childPort}`]
    writeFileSync(
      join(dir, 'prometheus.yml'),
      [
        'global:',
        '  scrape_interval: 1s',
        '  evaluation_interval: 1s',
        'rule_files: [alerts.yml]',
        'scrape_configs:',
        '  - job_name: taskloom',
        `    static_configs: [{ targets: ${JSON.stringify(targets)} }]`,
        '',
      ].join('\n'),
    )
    const port = await freePort()
    promUrl = `http://127.0.0.1:${port}`
    prometheus = spawn(
      'prometheus',
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: 'ignore' },
    )
    await until(
      async () => {
        try {
          const up = await query('up == 1')
          return up.length === 2
        } catch {
          return false
        }
      },
      30_000,
      'Prometheus scraping both processes',
    )
  }, 120_000)

  afterAll(async () => {
    const exited = (p: ChildProcess | undefined) =>
      p && p.exitCode === null && p.signalCode === null ? once(p, 'exit') : Promise.resolve()
    const stopped = [exited(prometheus), exited(child)]
    prometheus?.kill('SIGTERM')
    child?.kill('SIGTERM')
    await Promise.all(stopped)
    server?.close()
    await queue?.close()
    await redis?.stop()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('fires the depth warning at the true depth, and not the critical alert that twice it would', async () => {
    const name = queue.name
    // Both processes export the depth: summing the copies would say 120,000.
    expect(await scalar(`count(task_queue_depth{queue="${name}",priority="normal"})`)).toBe(2)
    expect(await scalar(`sum(task_queue_depth{queue="${name}"})`)).toBe(2 * (NORMAL + HIGH))
    await until(
      async () =>
        (await firing()).some((a) => a.labels.alertname === 'TaskloomQueueDepthHigh' && a.state === 'firing'),
      30_000,
      'TaskloomQueueDepthHigh to fire',
    )
    // Several more evaluations of the critical group: it stays quiet.
    await new Promise((resolve) => setTimeout(resolve, 3000))
    const alerts = await firing()
    expect(alerts.map((a) => a.labels.alertname)).not.toContain('TaskloomQueueDepthCritical')
    expect(alerts.map((a) => a.labels.alertname)).not.toContain('TaskloomDeadLetterQueueLarge')
    const depth = await query(`sum by (queue) (max by (queue, priority) (task_queue_depth{queue="${name}"}))`)
    expect(depth.map((s) => Number(s.value[1]))).toEqual([NORMAL + HIGH])
  })

  it('evaluates every dashboard query, and the queue-wide panels show the true values', async () => {
    const name = queue.name
    const exprs = readdirSync('ops/grafana')
      .filter((f) => f.endsWith('.json'))
      .flatMap((f) => {
        const d = JSON.parse(readFileSync(join('ops/grafana', f), 'utf8')) as {
          panels: { targets?: { expr: string }[] }[]
        }
        return d.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr))
      })
      .map((e) => e.replace(/\$__rate_interval/g, '10s').replace(/\$[a-z_]+/g, '.*'))
    expect(exprs.length).toBeGreaterThan(40)
    for (const expr of exprs) await query(expr) // each one parses and runs
    const dlq = await query(`max by (queue) (task_dlq_size{queue="${name}"})`)
    expect(dlq.map((s) => Number(s.value[1]))).toEqual([DEAD])
    const submitted = await scalar(
      `sum(max by (queue, tenant_id, task_type, priority) (tasks_submitted_total{queue="${name}"}))`,
    )
    expect(submitted).toBe(NORMAL + HIGH + DEAD)
    const perTenant = await query(
      `sum by (tenant_id) (max by (queue, tenant_id, task_type, priority) (tasks_submitted_total{queue="${name}"}))`,
    )
    expect(Object.fromEntries(perTenant.map((s) => [s.metric.tenant_id, Number(s.value[1])]))).toEqual({
      acme: (NORMAL + HIGH) / 2,
      globex: (NORMAL + HIGH) / 2,
      default: DEAD,
    })
    const failed = await scalar(
      `sum(max by (queue, tenant_id, task_type, error_type) (tasks_failed_total{queue="${name}"}))`,
    )
    expect(failed).toBe(DEAD)
    // Nobody picks anything up: the oldest ready task ages, in both processes alike.
    const ages = await query(`max by (queue, priority) (task_oldest_ready_age_seconds{queue="${name}"})`)
    const age = Object.fromEntries(ages.map((s) => [s.metric.priority, Number(s.value[1])]))
    expect(age.normal).toBeGreaterThan(0)
    expect(age.normal).toBeLessThanOrEqual((Date.now() - submittedAt) / 1000 + 1)
    expect(age.critical).toBe(0)
  })
})

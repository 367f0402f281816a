/**
 * The dashboard with 1,000,000 stored tasks: how long its JSON endpoints take to answer the task
 * list's first page, filtered pages, a later page (cursor), the dead-letter groups and the overview.
 * The rows are written straight into PostgreSQL (one INSERT ... SELECT generate_series), into a
 * schema of their own that is dropped at the end; the dashboard reads them through a durable queue.
 *
 *   npm run bench:dashboard                      # 1,000,000 tasks
 *   DASH_TASKS=100000 npm run bench:dashboard    # fewer
 */
import pg from 'pg'
import { createDashboard } from '../src/dashboard/index.js'
import { createQueue } from '../src/index.js'

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const TASKS = Number(process.env.DASH_TASKS ?? 1_000_000)
const ROUNDS = Number(process.env.DASH_ROUNDS ?? 15)
const SCHEMA = 'taskloom_dashbench'
const QUEUE = `dashbench-${process.pid}`
const silent = { debug() {}, info() {}, warn() {}, error() {} }

const client = new pg.Client(DATABASE_URL)
await client.connect()
await client.query(`drop schema if exists ${SCHEMA} cascade`)
const queue = createQueue({
  name: QUEUE,
  redis: REDIS_URL,
  postgres: DATABASE_URL,
  postgresSchema: SCHEMA,
  migrate: true,
  logger: silent,
})
try {
  await queue.ready()
  const began = performance.now()
  // 10 task names, 50 tenants, created over the last 30 days; 90 % completed, 3 % failed (two
  // errors), 3 % queued, 2 % pending, 2 % cancelled.
  await client.query(
    `insert into ${SCHEMA}.tasks (id, queue, tenant_id, name, payload, priority, status, scheduled_at,
       timeout_ms, max_retries, created_at, updated_at, completed_at, dead_lettered_at, error)
     select gen_random_uuid()::text, $1, 'tenant-' || (i % 50), 'task-' || (i % 10),
       jsonb_build_object('n', i), 'normal', s.status, c.at, 300000, 3, c.at, c.at,
       case when s.status in ('completed', 'failed', 'cancelled') then c.at + interval '1 second' end,
       case when s.status = 'failed' then c.at + interval '1 second' end,
       case when s.status = 'failed' then jsonb_build_object('name', 'Error', 'message',
         case when i % 2 = 0 then 'connection refused' else 'timeout' end) end
     from generate_series(1, $2::int) as g(i)
     cross join lateral (select now() - (i::float8 / $2 * interval '30 days') as at) c
     cross join lateral (select case
       when i % 100 < 90 then 'completed' when i % 100 < 93 then 'failed'
       when i % 100 < 96 then 'queued' when i % 100 < 98 then 'pending' else 'cancelled' end as status) s`,
    [QUEUE, TASKS],
  )
  await client.query(`analyze ${SCHEMA}.tasks`)
  console.error(
    `inserted ${TASKS.toLocaleString()} tasks in ${((performance.now() - began) / 1000).toFixed(1)} s`,
  )

  const dashboard = createDashboard({
    queues: [queue],
    auth: { user: () => ({ id: 'bench' }) },
    logger: silent,
  })
  const get = async (url: string) => {
    const res = await dashboard.handle({ method: 'GET', url, headers: {} })
    if (res.status !== 200) throw new Error(`${url} answered ${res.status}: ${res.body}`)
    return JSON.parse(res.body) as { next_cursor?: string | null }
  }
  const first = await get(`/_api/tasks?queue=${QUEUE}`)
  const cases: [string, string][] = [
    ['first page (no filter)', `/_api/tasks?queue=${QUEUE}`],
    ['next page (cursor)', `/_api/tasks?queue=${QUEUE}&cursor=${encodeURIComponent(first.next_cursor!)}`],
    ['status=failed', `/_api/tasks?queue=${QUEUE}&status=failed`],
    ['name=task-3', `/_api/tasks?queue=${QUEUE}&name=task-3`],
    ['tenant=tenant-7', `/_api/tasks?queue=${QUEUE}&tenant=tenant-7`],
    ['tenant + status=queued', `/_api/tasks?queue=${QUEUE}&tenant=tenant-7&status=queued`],
    ['name + status=failed', `/_api/tasks?queue=${QUEUE}&name=task-3&status=failed`],
    [
      'created in the last day',
      `/_api/tasks?queue=${QUEUE}&from=${new Date(Date.now() - 86_400_000).toISOString()}`,
    ],
    ['dead-letter groups + page', `/_api/dlq?queue=${QUEUE}`],
    ['overview (counts + 1 h activity)', '/_api/overview'],
  ]
  const rows: string[] = []
  for (const [label, url] of cases) {
    await get(url) // warm
    const samples: number[] = []
    for (let i = 0; i < ROUNDS; i++) {
      const t = performance.now()
      await get(url)
      samples.push(performance.now() - t)
    }
    samples.sort((a, b) => a - b)
    const p = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))]!.toFixed(1)
    rows.push(`| ${label} | ${p(0.5)} | ${p(0.95)} |`)
    console.error(`${label}: median ${p(0.5)} ms`)
  }
  console.log(`\nDashboard reads with ${TASKS.toLocaleString()} stored tasks (ms, ${ROUNDS} rounds)\n`)
  console.log('| request | median | p95 |\n| --- | ---: | ---: |')
  console.log(rows.join('\n'))
} finally {
  await queue.close()
  await client.query(`drop schema if exists ${SCHEMA} cascade`)
  await client.end()
}

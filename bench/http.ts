/**
 * `npm run bench:http`: task submissions through the Express adapter with API-key auth and the
 * Redis rate limiter on, at a fixed arrival rate (open loop: requests leave on schedule whether or
 * not earlier ones answered, so a slow answer cannot hide the ones queued behind it), then at the
 * most a fixed number of connections can push (closed loop).
 *
 *   BENCH_RATE=1000 BENCH_SECONDS=20 npm run bench:http
 *   BENCH_MODE=redis npm run bench:http      # Redis-only queue (keys and audit in PostgreSQL)
 *
 * Needs Redis and PostgreSQL (REDIS_URL, DATABASE_URL; defaults: the local ones).
 */
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { Agent, createServer, request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import express from 'express'
import pg from 'pg'
import { z } from 'zod'
import { expressRouter } from '../src/http/adapters/express.js'
import { createApi } from '../src/http/index.js'
import { createQueue, defineTask } from '../src/index.js'
import { fmtInt, fmtMs, summarize } from './stats.js'

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const RATE = Number(process.env.BENCH_RATE ?? 1000)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20)
const WARMUP = Number(process.env.BENCH_WARMUP_SECONDS ?? 3)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 64)
const MODE = process.env.BENCH_MODE === 'redis' ? 'redis' : 'durable'
const quiet = { debug() {}, info() {}, warn() {}, error() {} }

const sendEmail = defineTask({
  name: 'send-email',
  input: z.object({ to: z.email(), subject: z.string() }),
})

const CLIENT = process.env.BENCH_HTTP_CLIENT

if (CLIENT) {
  // The load generator: its own process, so its event loop and CPU are not the server's.
  const { port, key } = JSON.parse(CLIENT) as { port: number; key: string }
  const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS })
  let seq = 0
  function submit(): Promise<number> {
    const body = JSON.stringify({
      name: 'send-email',
      payload: { to: `u${seq++}@example.com`, subject: 'hi' },
    })
    return new Promise((resolve, reject) => {
      const req = request(
        {
          agent,
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: '/api/v1/tasks',
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
            'x-api-key': key,
          },
        },
        (res) => {
          res.resume()
          res.on('end', () => resolve(res.statusCode ?? 0))
        },
      )
      req.on('error', reject)
      req.end(body)
    })
  }

  /** Open loop at `rate` per second for `seconds`; latency is measured from each request's scheduled time. */
  async function fixedRate(rate: number, seconds: number) {
    const latencies: number[] = []
    const statuses = new Map<number, number>()
    const total = rate * seconds
    const interval = 1000 / rate
    const start = performance.now()
    const pending: Promise<void>[] = []
    for (let i = 0; i < total; i++) {
      const due = start + i * interval
      const wait = due - performance.now()
      if (wait > 1) await new Promise((r) => setTimeout(r, wait))
      pending.push(
        submit().then((status) => {
          latencies.push(performance.now() - due)
          statuses.set(status, (statuses.get(status) ?? 0) + 1)
        }),
      )
    }
    await Promise.all(pending)
    const elapsed = (performance.now() - start) / 1000
    return { latencies, statuses, achieved: total / elapsed }
  }

  /** Closed loop: `connections` requests in flight for `seconds`. */
  async function maxThroughput(connections: number, seconds: number) {
    let done = 0
    const latencies: number[] = []
    const end = performance.now() + seconds * 1000
    const start = performance.now()
    await Promise.all(
      Array.from({ length: connections }, async () => {
        while (performance.now() < end) {
          const t = performance.now()
          const status = await submit()
          latencies.push(performance.now() - t)
          if (status === 201) done++
        }
      }),
    )
    return { perSecond: done / ((performance.now() - start) / 1000), latencies }
  }

  await fixedRate(Math.min(RATE, 500), WARMUP)
  const fixed = await fixedRate(RATE, SECONDS)
  const max = await maxThroughput(CONNECTIONS, Math.min(SECONDS, 10))
  agent.destroy()
  process.send!({
    fixed: { ...summarize(fixed.latencies), achieved: fixed.achieved, statuses: [...fixed.statuses] },
    max: { ...summarize(max.latencies), perSecond: max.perSecond },
  })
  process.exit(0)
}

const schema = `bench_http_${process.pid}`
const queue = createQueue({
  name: `bench-http-${process.pid}-${Date.now().toString(36)}`,
  redis: REDIS_URL,
  ...(MODE === 'durable' ? { postgres: DATABASE_URL, postgresSchema: schema, migrate: true } : {}),
  logger: quiet,
})
await queue.ready()
const api = createApi({
  queue,
  tasks: [sendEmail],
  logger: quiet,
  ...(MODE === 'redis' ? { postgres: DATABASE_URL, postgresSchema: schema, migrate: true } : {}),
})
const keys = await api.keys()
// The limiter runs on every request; the tenant's limit (set as the operator would) is above the
// offered load, so none is refused.
await keys.tenants.set('bench', { rateLimit: RATE * 60 * 4 })
const { key } = await keys.create({ tenantId: 'bench', scopes: ['task:create'] })

const app = express()
app.use('/api/v1', expressRouter(api))
const server = createServer(app)
server.keepAliveTimeout = 60_000
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
const port = (server.address() as AddressInfo).port

console.log(`HTTP bench: Express adapter, ${MODE} queue, API key auth + Redis token bucket on every request`)
console.log(
  `load generator in its own process: ${RATE}/s open loop for ${SECONDS} s, then ${CONNECTIONS} connections closed loop`,
)
const child = fork(fileURLToPath(import.meta.url), [], {
  env: { ...process.env, BENCH_HTTP_CLIENT: JSON.stringify({ port, key }) },
  execArgv: process.execArgv,
})
type Summary = ReturnType<typeof summarize>
const [report] = (await once(child, 'message')) as [
  {
    fixed: Summary & { achieved: number; statuses: [number, number][] }
    max: Summary & { perSecond: number }
  },
]
const s = report.fixed
const m = report.max
const statusText = s.statuses.map(([k, v]) => `${k}: ${fmtInt(v)}`).join(', ')
console.log(
  `fixed rate ${fmtInt(RATE)}/s for ${SECONDS} s: achieved ${fmtInt(s.achieved)}/s; latency p50 ${fmtMs(s.p50)} ms, p95 ${fmtMs(s.p95)} ms, p99 ${fmtMs(s.p99)} ms, max ${fmtMs(s.max)} ms; statuses ${statusText}`,
)
console.log(
  `max throughput, ${CONNECTIONS} connections: ${fmtInt(m.perSecond)} submissions/s; latency p50 ${fmtMs(m.p50)} ms, p95 ${fmtMs(m.p95)} ms, p99 ${fmtMs(m.p99)} ms`,
)
console.log(`target (issue 5): p95 < 10 ms at 1,000/s: ${s.p95 < 10 ? 'met' : 'missed'}`)

server.close()
await api.close()
await queue.close()
const client = new pg.Client(DATABASE_URL)
await client.connect()
await client.query(`drop schema if exists "${schema}" cascade`)
await client.end()

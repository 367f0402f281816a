/**
 * A multi-tenant REST API on Express: two tenants, each with its own API key, submit to one queue
 * and see only their own tasks. Runs with no servers (in-process broker + embedded PostgreSQL);
 * set REDIS_URL and DATABASE_URL to run it durable.
 *
 *   npm run example:express
 *   curl -s -X POST localhost:3000/api/v1/tasks -H "X-API-Key: <acme key>" \
 *     -H 'content-type: application/json' -d '{"name":"send-email","payload":{"to":"a@b.co","subject":"hi"}}'
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import express from 'express'
import { expressRouter } from '../../src/http/adapters/express.js'
import { createApi } from '../../src/http/index.js'
import { createQueue, createWorker } from '../../src/index.js'
import { createMetrics } from '../../src/observability/index.js'
import { resizeImage, sendEmail } from './tasks.js'

const queue = createQueue({
  name: 'express-api',
  ...(process.env.REDIS_URL ? { redis: process.env.REDIS_URL } : {}),
  ...(process.env.DATABASE_URL ? { postgres: process.env.DATABASE_URL, migrate: true } : {}),
})
const worker = createWorker({ queue, concurrency: 10 })
worker.handle(sendEmail, async (input) => ({ delivered: true, to: input.to }))
worker.handle(resizeImage, async (input) => ({ url: `${input.url}?w=${input.width}` }))
await worker.start()

// Prometheus metrics for the queue, the worker and the API: they show every tenant, so GET
// /api/v1/metrics answers the operator's key only (a scraper without a key would use
// metricsHandler(api) from taskloom/node on a private port).
const metrics = createMetrics({ workers: () => queue.workers() })
metrics.observe(queue)
metrics.observeWorker(worker)
// Schedules (POST /schedules), the fleet (GET /workers) and tasks registered by workers elsewhere
// come from the queue itself. Each tenant's keys share 600 requests a minute unless the operator
// sets the tenant's own. The API runs a scheduler too, so schedules made over REST fire
// (`scheduler: false` if a scheduler runs in another process); `ready()` starts it now.
const api = createApi({ queue, tasks: [sendEmail, resizeImage], rateLimit: 600, metrics })
await api.ready()
const keys = await api.keys()
// Two tenants, two keys: each sees only its own tasks (another tenant's task is a 404).
const acme = await keys.create({
  tenantId: 'acme',
  name: 'acme app',
  scopes: ['task:create', 'task:read', 'task:list', 'task:cancel'],
})
const globex = await keys.create({
  tenantId: 'globex',
  name: 'globex app',
  scopes: ['task:create', 'task:read', 'task:list'],
})
// acme's own admin manages acme's keys (never with more than its own rights); the operator sets
// each tenant's limits and scopes, and alone reads /metrics and /workers.
const ops = await keys.create({ tenantId: 'acme', name: 'acme ops', scopes: ['admin'] })
const operator = await keys.create({ name: 'operator', scopes: ['operator'] })
await keys.tenants.set('globex', { rateLimit: 120, monthlyQuota: 10_000 })

const app = express()
app.get('/', (_req, res) => {
  res.redirect('/api/v1/openapi.json')
})
app.use('/api/v1', expressRouter(api))
const server = createServer(app)
server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1')
await new Promise((resolve) => server.once('listening', resolve))
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1`

console.log(`taskloom API (Express) on ${base}`)
console.log(`key acme ${acme.key}`)
console.log(`key globex ${globex.key}`)
console.log(`key acme-admin ${ops.key}`)
console.log(`key operator ${operator.key}`)
console.log(`try: curl -s -X POST ${base}/tasks -H "X-API-Key: ${acme.key}" -H 'content-type: application/json' \\
  -d '{"name":"send-email","payload":{"to":"a@b.co","subject":"hi"}}'`)

async function shutdown() {
  server.close()
  await worker.close({ graceMs: 5000 })
  await api.close()
  await queue.close()
  console.log('stopped')
  process.exit(0)
}
process.once('SIGINT', shutdown)
process.once('SIGTERM', shutdown)

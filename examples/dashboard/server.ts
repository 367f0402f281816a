/**
 * The web dashboard on the embedded defaults (in-process broker + PGlite; no servers): a REST API
 * and the dashboard on one node:http server, demo tasks of every status, and keys to sign in with.
 * Set REDIS_URL and DATABASE_URL to run it durable.
 *
 *   npm run example:dashboard
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createDashboard } from '../../src/dashboard/index.js'
import { nodeHandler } from '../../src/http/adapters/node.js'
import { createApi } from '../../src/http/index.js'
import { createQueue, createWorker } from '../../src/index.js'
import { chargeCard, handleDemoTasks, renderReport, seedDemo, sendEmail } from './seed.js'

const queue = createQueue({
  name: 'dashboard-demo',
  ...(process.env.REDIS_URL ? { redis: process.env.REDIS_URL } : {}),
  ...(process.env.DATABASE_URL ? { postgres: process.env.DATABASE_URL, migrate: true } : {}),
})
const worker = createWorker({ queue, concurrency: 4, breakers: false })
handleDemoTasks(worker)
await worker.start()

const tasks = [sendEmail, renderReport, chargeCard]
const api = createApi({ queue, tasks })
await api.ready()
const keys = await api.keys()
const operator = await keys.create({ name: 'operator', scopes: ['operator'] })
const viewer = await keys.create({ tenantId: 'acme', name: 'acme viewer', scopes: ['dashboard:read'] })
const admin = await keys.create({ tenantId: 'globex', name: 'globex admin', scopes: ['admin'] })
await keys.tenants.set('globex', { rateLimit: 120, monthlyQuota: 1000 })

const dashboard = createDashboard({
  queues: [queue],
  auth: { apiKeys: api },
  tasks,
  // Card numbers never reach the browser.
  redact: ['card.number'],
})
const serveApi = nodeHandler(api, { prefix: '/api/v1' })
const serveDashboard = nodeHandler(dashboard, { prefix: '/dashboard' })
const server = createServer((req, res) => {
  if (req.url?.startsWith('/api/v1')) return serveApi(req, res)
  if (req.url === '/' || req.url === '') {
    res.writeHead(302, { location: '/dashboard/' }).end()
    return
  }
  serveDashboard(req, res)
})
server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1')
await new Promise((resolve) => server.once('listening', resolve))
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

await seedDemo(queue)
console.log(`key operator ${operator.key}`)
console.log(`key acme-viewer ${viewer.key}`)
console.log(`key globex-admin ${admin.key}`)
console.log(`taskloom dashboard on ${base}/dashboard/`)
console.log('try: open that URL and sign in with one of the keys above')

async function shutdown() {
  server.close()
  await worker.close({ graceMs: 1000 })
  await dashboard.close()
  await api.close()
  await queue.close()
  process.exit(0)
}
process.once('SIGINT', shutdown)
process.once('SIGTERM', shutdown)

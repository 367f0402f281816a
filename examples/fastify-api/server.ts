/**
 * The REST API as a Fastify plugin under /api/v1. Runs with no servers (in-process broker +
 * embedded PostgreSQL); set REDIS_URL and DATABASE_URL to run it durable.
 *
 *   npm run example:fastify
 */
import Fastify from 'fastify'
import { fastifyFrameworkErrors, fastifyPlugin } from '../../src/http/adapters/fastify.js'
import { createApi } from '../../src/http/index.js'
import { createQueue, createWorker } from '../../src/index.js'
import { resizeImage, sendEmail } from '../express-api/tasks.js'

const queue = createQueue({
  name: 'fastify-api',
  ...(process.env.REDIS_URL ? { redis: process.env.REDIS_URL } : {}),
  ...(process.env.DATABASE_URL ? { postgres: process.env.DATABASE_URL, migrate: true } : {}),
})
const worker = createWorker({ queue, concurrency: 10 })
worker.handle(sendEmail, async (input) => ({ delivered: true, to: input.to }))
worker.handle(resizeImage, async (input) => ({ url: `${input.url}?w=${input.width}` }))
await worker.start()

// The API runs a scheduler as well, so a schedule made with POST /schedules fires every tick.
const api = createApi({ queue, tasks: [sendEmail, resizeImage] })
await api.ready()
const keys = await api.keys()
const app = Fastify({ frameworkErrors: fastifyFrameworkErrors(api) })
app.get('/', async () => ({ see: '/api/v1/openapi.json' }))
await app.register(fastifyPlugin, { api, prefix: '/api/v1' })
await app.listen({ port: Number(process.env.PORT ?? 3001), host: '127.0.0.1' })
const address = app.server.address()
const base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/api/v1`

// Each tenant gets its own key; admin keys manage keys, the dead-letter queue and schedules.
const team = await keys.create({
  tenantId: 'team-a',
  scopes: ['task:create', 'task:read', 'task:list', 'task:cancel'],
})
const other = await keys.create({ tenantId: 'team-b', scopes: ['task:create', 'task:read', 'task:list'] })
console.log(`taskloom API (Fastify) on ${base}`)
console.log(`key team-a ${team.key}`)
console.log(`key team-b ${other.key}`)
console.log(`schedule: curl -s -X POST ${base}/schedules -H "X-API-Key: ${team.key}" -H 'content-type: application/json' \\
  -d '{"id":"digest","name":"send-email","cron":"*/5 * * * *","payload":{"to":"a@b.co","subject":"digest"}}'`)
console.log(`try: curl -s -X POST ${base}/tasks -H "X-API-Key: ${team.key}" -H 'content-type: application/json' \\
  -d '{"name":"send-email","payload":{"to":"a@b.co","subject":"hi"}}'`)

async function shutdown() {
  await app.close()
  await worker.close({ graceMs: 5000 })
  await api.close()
  await queue.close()
  console.log('stopped')
  process.exit(0)
}
process.once('SIGINT', shutdown)
process.once('SIGTERM', shutdown)

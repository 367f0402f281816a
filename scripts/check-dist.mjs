// Smoke test of the built package as a user gets it: ESM import and CJS require of every entry,
// then one task through the in-process broker.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const esm = await import('taskloom')
const cjs = require('taskloom')
const testing = await import('taskloom/testing')
require('taskloom/testing')
const observability = await import('taskloom/observability')
const observabilityCjs = require('taskloom/observability')
if (typeof observability.createMetrics !== 'function' || typeof observabilityCjs.createMetrics !== 'function')
  throw new Error('missing export createMetrics in taskloom/observability')
for (const name of ['createQueue', 'createWorker', 'defineTask', 'NonRetryableError', 'TaskloomError']) {
  if (typeof esm[name] !== 'function' || typeof cjs[name] !== 'function')
    throw new Error(`missing export ${name}`)
}
const subpaths = {
  'taskloom/http': 'createApi',
  'taskloom/express': 'expressRouter',
  'taskloom/fastify': 'fastifyPlugin',
  'taskloom/node': 'nodeHandler',
  'taskloom/dashboard': 'createDashboard',
}
for (const [path, name] of Object.entries(subpaths)) {
  if (typeof (await import(path))[name] !== 'function' || typeof require(path)[name] !== 'function')
    throw new Error(`missing export ${name} of ${path}`)
}
const { z } = await import('zod')
const task = esm.defineTask({ name: 'check', input: z.object({ n: z.number() }) })
const queue = esm.createQueue({ name: 'check-dist' })
const worker = esm.createWorker({ queue }).handle(task, ({ n }) => n + 1)
// The CJS observability entry reads a queue made by the CJS root entry (shared internals symbol).
const cjsQueue = cjs.createQueue({ name: 'check-dist-cjs' })
observabilityCjs.createMetrics().observe(cjsQueue)
await cjsQueue.close()
await worker.start()
const { id } = await queue.submit(task, { n: 41 })
const done = await testing.waitForTask(queue, id)
// The dashboard finds its prebuilt front end inside the package, from the ESM and the CJS entry.
for (const { createDashboard } of [await import('taskloom/dashboard'), require('taskloom/dashboard')]) {
  const dashboard = createDashboard({ queues: [queue], auth: { user: () => null } })
  const page = await dashboard.handle({ method: 'GET', url: '/', headers: {} })
  const script = page.body.match(/src="\/assets\/([^"]+)"/)?.[1]
  const asset = script && (await dashboard.handle({ method: 'GET', url: `/assets/${script}`, headers: {} }))
  if (page.status !== 200 || !asset || asset.status !== 200)
    throw new Error(`dist: the dashboard's page or assets are missing (${page.status})`)
}
await worker.close()
await queue.close()
if (done.result !== 42) throw new Error(`dist smoke test: expected 42, got ${JSON.stringify(done)}`)
console.log('dist: ESM and CJS entries load; a task ran through the built package')

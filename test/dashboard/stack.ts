/**
 * A dashboard stack for tests: a durable queue on the shared Redis and PostgreSQL (own schema),
 * the demo tasks and data of examples/dashboard, the REST API and the dashboard on one node:http
 * server (API at /api/v1, dashboard at /admin/queues), keys for each kind of viewer, and Chromium.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Browser, chromium } from 'playwright-core'
import {
  chargeCard,
  handleDemoTasks,
  renderReport,
  seedDemo,
  sendEmail,
} from '../../examples/dashboard/seed.js'
import { buildDashboardClient } from '../../scripts/build-dashboard.mjs'
import { createDashboard, type Dashboard } from '../../src/dashboard/index.js'
import { nodeHandler } from '../../src/http/adapters/node.js'
import { type Api, createApi } from '../../src/http/index.js'
import { createQueue, createWorker, type Queue, type Worker } from '../../src/index.js'
import { silent } from '../helpers/backends.js'
import { DATABASE_URL, dropSchema, REDIS_URL, uniqueName } from '../helpers/services.js'

export const PREFIX = '/admin/queues'
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

export interface DashboardStack {
  queue: Queue
  api: Api
  dashboard: Dashboard
  worker: Worker
  /** The dashboard's base URL, with a trailing slash. */
  url: string
  origin: string
  keys: { operator: string; acmeViewer: string; globexAdmin: string; noDashboard: string }
  xssTaskId: string
  fixCharges(): void
  browser: Browser
  close(): Promise<void>
}

/**
 * The front end built into a folder of this test file's own (files run in parallel), and a durable
 * queue in a schema of its own; remove both with `rmSync(assetsDir)` and `dropSchema(schema)`.
 */
export async function dashboardFixtures(): Promise<{ assetsDir: string; queue: Queue; schema: string }> {
  const { outdir: assetsDir } = await buildDashboardClient(mkdtempSync(join(tmpdir(), 'tl-dash-')))
  const schema = uniqueName('dash').replaceAll('-', '_')
  const queue = createQueue({
    name: uniqueName('dash'),
    redis: REDIS_URL,
    postgres: DATABASE_URL,
    postgresSchema: schema,
    migrate: true,
    logger: silent,
  })
  await queue.ready()
  return { assetsDir, queue, schema }
}

export async function startDashboardStack(): Promise<DashboardStack> {
  const { assetsDir, queue, schema } = await dashboardFixtures()
  const worker = createWorker({ queue, concurrency: 4, logger: silent, breakers: false })
  const { fixCharges } = handleDemoTasks(worker)
  await worker.start()
  const tasks = [sendEmail, renderReport, chargeCard]
  const api = createApi({ queue, tasks, logger: silent, scheduler: false })
  await api.ready()
  const keyStore = await api.keys()
  const made = async (input: Parameters<typeof keyStore.create>[0]) => (await keyStore.create(input)).key
  const keys = {
    operator: await made({ name: 'ops', scopes: ['operator'] }),
    acmeViewer: await made({ tenantId: 'acme', name: 'acme viewer', scopes: ['dashboard:read'] }),
    globexAdmin: await made({ tenantId: 'globex', name: 'globex admin', scopes: ['admin'] }),
    noDashboard: await made({ tenantId: 'acme', scopes: ['task:read'] }),
  }
  await keyStore.tenants.set('globex', { rateLimit: 120, monthlyQuota: 1000 })
  const dashboard = createDashboard({
    queues: [queue],
    auth: { apiKeys: api },
    tasks,
    redact: ['card.number'],
    refreshMs: 1000,
    logger: silent,
    assetsDir,
  })
  const serveApi = nodeHandler(api, { prefix: '/api/v1' })
  const serveDashboard = nodeHandler(dashboard, { prefix: PREFIX })
  const server: Server = createServer((req, res) =>
    req.url?.startsWith('/api/v1') ? serveApi(req, res) : serveDashboard(req, res),
  )
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const { xssTaskId } = await seedDemo(queue)
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] })
  return {
    queue,
    api,
    dashboard,
    worker,
    url: `${origin}${PREFIX}/`,
    origin,
    keys,
    xssTaskId,
    fixCharges,
    browser,
    async close() {
      await browser.close()
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
      await worker.close({ graceMs: 0 })
      await dashboard.close()
      await api.close()
      await queue.close()
      await dropSchema(schema)
      rmSync(assetsDir, { recursive: true, force: true })
    },
  }
}

/**
 * The dashboard's server side without a browser: mounted with Express and Fastify under a prefix,
 * its page and hashed assets and their headers; sign-in through a host callback, a tenant user kept
 * to its tenant and a read-only one refused actions; a Redis-only queue says what it cannot show;
 * an encrypted input shows as encrypted to a dashboard whose queue lacks the key.
 */
import { randomBytes } from 'node:crypto'
import { rmSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import express from 'express'
import Fastify from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sendEmail } from '../../examples/dashboard/seed.js'
import { createDashboard, type DashboardUser } from '../../src/dashboard/index.js'
import { expressRouter } from '../../src/http/adapters/express.js'
import { fastifyPlugin } from '../../src/http/adapters/fastify.js'
import type { ApiRequest } from '../../src/http/index.js'
import { createQueue, type Queue } from '../../src/index.js'
import { silent } from '../helpers/backends.js'
import { dropSchema, hasPostgres, hasRedis, REDIS_URL, uniqueName } from '../helpers/services.js'
import { dashboardFixtures } from './stack.js'

const ready = (await hasRedis()) && (await hasPostgres())

/** The host app's login: the `x-user` header names a user of the table below. */
const USERS: Record<string, DashboardUser> = {
  ops: { id: 'ops', canAct: true },
  acme: { id: 'acme-viewer', tenantId: 'acme' },
}
const user = (req: ApiRequest) => {
  const name = req.headers['x-user']
  return typeof name === 'string' ? (USERS[name] ?? null) : null
}

describe.skipIf(!ready)('dashboard server', () => {
  let queue: Queue
  let schema: string
  const servers: Server[] = []
  const closers: (() => Promise<unknown>)[] = []
  let expressBase = ''
  let fastifyBase = ''
  let assetsDir = ''

  beforeAll(async () => {
    ;({ assetsDir, queue, schema } = await dashboardFixtures())
    await queue.submit(
      sendEmail,
      { to: 'a@acme.example', subject: 'hi' },
      { tenantId: 'acme', delayMs: 3_600_000 },
    )
    await queue.submit(
      sendEmail,
      { to: 'b@globex.example', subject: 'hi' },
      { tenantId: 'globex', delayMs: 3_600_000 },
    )
    const dashboard = createDashboard({ queues: [queue], auth: { user }, logger: silent, assetsDir })
    closers.push(() => dashboard.close())
    const app = express()
    app.use('/ops/queues', expressRouter(dashboard))
    const server = createServer(app)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    servers.push(server)
    expressBase = `http://127.0.0.1:${(server.address() as AddressInfo).port}/ops/queues`
    const fastify = Fastify()
    await fastify.register(fastifyPlugin, { api: dashboard, prefix: '/ops/queues' })
    fastifyBase = `${await fastify.listen({ port: 0, host: '127.0.0.1' })}/ops/queues`
    closers.push(() => fastify.close())
  })
  afterAll(async () => {
    for (const s of servers) await new Promise((resolve) => s.close(resolve))
    for (const close of closers) await close()
    await queue?.close()
    if (schema) await dropSchema(schema)
    if (assetsDir) rmSync(assetsDir, { recursive: true, force: true })
  })

  it('serves its page and hashed assets under any prefix, with Express and with Fastify', async () => {
    for (const base of [expressBase, fastifyBase]) {
      const page = await fetch(`${base}/tasks?status=failed`)
      expect(page.status).toBe(200)
      expect(page.headers.get('cache-control')).toBe('no-store')
      expect(page.headers.get('content-security-policy')).toContain("default-src 'self'")
      const html = await page.text()
      const script = html.match(/src="\/ops\/queues\/assets\/(app\.[0-9a-f]+\.js)"/)?.[1]
      expect(script).toBeDefined()
      const asset = await fetch(`${base}/assets/${script}`)
      expect(asset.status).toBe(200)
      expect(asset.headers.get('content-type')).toMatch(/^text\/javascript/)
      expect(asset.headers.get('cache-control')).toBe('public, max-age=31536000, immutable')
      expect((await fetch(`${base}/assets/nope.js`)).status).toBe(404)
    }
  })

  it("signs in through the host's callback and keeps a tenant user to its tenant", async () => {
    expect((await fetch(`${expressBase}/_api/tasks`)).status).toBe(401)
    const ops = (await (
      await fetch(`${expressBase}/_api/tasks`, { headers: { 'x-user': 'ops' } })
    ).json()) as {
      tasks: { tenant_id: string }[]
    }
    expect(ops.tasks.map((t) => t.tenant_id).sort()).toEqual(['acme', 'globex'])
    const acme = (await (
      await fetch(`${expressBase}/_api/tasks`, { headers: { 'x-user': 'acme' } })
    ).json()) as {
      tasks: { tenant_id: string; task_id: string }[]
    }
    expect(acme.tasks.map((t) => t.tenant_id)).toEqual(['acme'])
    // Asking for another tenant's rows changes nothing for a tenant user.
    const asked = (await (
      await fetch(`${expressBase}/_api/tasks?tenant=globex`, { headers: { 'x-user': 'acme' } })
    ).json()) as { tasks: { tenant_id: string }[] }
    expect(asked.tasks.map((t) => t.tenant_id)).toEqual(['acme'])
    const overview = (await (
      await fetch(`${expressBase}/_api/overview`, { headers: { 'x-user': 'acme' } })
    ).json()) as { queues: { snapshot: { ready: unknown; delayed: number } }[] }
    expect(overview.queues[0]!.snapshot).toMatchObject({ ready: null, delayed: 1 })

    // A read-only user with a valid CSRF token is still refused the action.
    const session = await fetch(`${expressBase}/_api/session`, { headers: { 'x-user': 'acme' } })
    const cookie = session.headers.get('set-cookie')!.split(';')[0]!
    const { csrf } = (await session.json()) as { csrf: string }
    const cancel = await fetch(`${expressBase}/_api/tasks/${queue.name}/${acme.tasks[0]!.task_id}/cancel`, {
      method: 'POST',
      headers: { 'x-user': 'acme', cookie, 'x-csrf-token': csrf, 'content-type': 'application/json' },
      body: '{}',
    })
    expect(cancel.status).toBe(403)
    expect((await queue.get(acme.tasks[0]!.task_id))!.status).toBe('pending')
  })

  it('says plainly what a Redis-only queue cannot show, and shows encrypted input as encrypted', async () => {
    const name = uniqueName('dashr')
    const key = randomBytes(32)
    const sealed = createQueue({
      name,
      redis: REDIS_URL,
      logger: silent,
      encryption: { keys: { k1: key }, primaryKeyId: 'k1' },
    })
    const plain = createQueue({ name, redis: REDIS_URL, logger: silent })
    try {
      const { id } = await sealed.submit(
        sendEmail,
        { to: 'secret@acme.example', subject: 's' },
        { delayMs: 3_600_000 },
      )
      const dashboard = createDashboard({ queues: [plain], auth: { user }, logger: silent, assetsDir })
      const ask = async (url: string) =>
        JSON.parse((await dashboard.handle({ method: 'GET', url, headers: { 'x-user': 'ops' } })).body)
      const list = await ask(`/_api/tasks?queue=${name}`)
      expect(list.unsupported).toMatch(/Redis-only/)
      const overview = await ask('/_api/overview')
      expect(overview.queues[0]).toMatchObject({ mode: 'redis-only', activity: null })
      expect(overview.queues[0].snapshot.history).toBe(false)
      const detail = await ask(`/_api/tasks/${name}/${id}`)
      expect(detail.input).toEqual({ encrypted: 'k1' })
      const found = await ask(`/_api/tasks?queue=${name}&find=${id}`)
      expect(found.tasks).toHaveLength(1)
      // The queue that holds the key shows the input.
      const own = createDashboard({ queues: [sealed], auth: { user }, logger: silent, assetsDir })
      const shown = JSON.parse(
        (await own.handle({ method: 'GET', url: `/_api/tasks/${name}/${id}`, headers: { 'x-user': 'ops' } }))
          .body,
      )
      expect(shown.input.text).toContain('secret@acme.example')
    } finally {
      await sealed.close()
      await plain.close()
    }
  })
})

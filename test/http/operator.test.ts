/**
 * The operator and the tenant's own admin: what a tenant admin key may give a key it creates (never
 * more than it holds), what only the operator grants, per-tenant rate limits and quotas shared by
 * all of a tenant's keys (across two API processes on one Redis), keys dead on arrival, and
 * /metrics kept from tenants.
 */
import type { ChildProcess } from 'node:child_process'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { metricsHandler } from '../../src/http/adapters/node.js'
import { createApi } from '../../src/http/index.js'
import { createQueue } from '../../src/index.js'
import { silent } from '../helpers/backends.js'
import { DATABASE_URL, hasPostgres, hasRedis, REDIS_URL, uniqueName } from '../helpers/services.js'
import { spawnFixture } from '../helpers/spawn-fixture.js'
import { RecordingMetrics } from './fakes.js'
import { call, SERVERS, type Stack, sendEmail, startStack } from './harness.js'

const up = (await hasRedis()) && (await hasPostgres())

const children: ChildProcess[] = []
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGTERM')
})

/** A second API process on the stack's queue; resolves with its base URL. */
async function secondProcess(stack: Stack, options: Record<string, unknown>): Promise<string> {
  const child = spawnFixture(
    'test/fixtures/api-process.ts',
    [REDIS_URL, DATABASE_URL, stack.schema, stack.queue.name, JSON.stringify(options)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  children.push(child)
  return new Promise<string>((resolve, reject) => {
    let out = ''
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
      const url = out.match(/^listening (\S+)$/m)?.[1]
      if (url) resolve(url)
    })
    child.once('exit', (code) => reject(new Error(`the API process exited with ${code}: ${out}`)))
  })
}

const submit = (base: string, key: string, subject = 's') =>
  call(base, 'POST', '/tasks', { key, json: { name: 'send-email', payload: { to: 'a@b.co', subject } } })

describe.skipIf(!up)('a tenant admin creates keys only within what it holds', () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({ worker: false })
  }, 60_000)
  afterAll(() => stack?.close())

  describe.each(SERVERS)('through %s', (server) => {
    const url = () => stack.url[server]

    it('refuses a key with a higher rate limit, quota or later expiry than its own (403, each field named)', async () => {
      const tenant = uniqueName('lift')
      const expiresAt = new Date(Date.now() + 3_600_000)
      const admin = await stack.key(tenant, ['admin'], { rateLimit: 30, monthlyQuota: 10, expiresAt })
      const lifted = await call(url(), 'POST', '/admin/keys', {
        key: admin,
        json: {
          scopes: ['task:create'],
          rate_limit: 2_000_000_000,
          monthly_quota: 2_000_000_000,
          expires_at: new Date(Date.now() + 7_200_000).toISOString(),
        },
      })
      expect(lifted.status).toBe(403)
      expect(lifted.body.code).toBe('FORBIDDEN')
      expect(lifted.body.errors.map((e: { path: string }) => e.path).sort()).toEqual([
        'expires_at',
        'monthly_quota',
        'rate_limit',
      ])
      // Nothing was created.
      const listed = await call(url(), 'GET', '/admin/keys', { key: admin })
      expect(listed.body.keys).toHaveLength(1)

      // Left out, the limits and the expiry are the creator's own; equal or lower ones are fine.
      const inherited = await call(url(), 'POST', '/admin/keys', {
        key: admin,
        json: { scopes: ['task:read'] },
      })
      expect(inherited.status).toBe(201)
      expect(inherited.body).toMatchObject({
        rate_limit: 30,
        monthly_quota: 10,
        expires_at: expiresAt.toISOString(),
      })
      const lower = await call(url(), 'POST', '/admin/keys', {
        key: admin,
        json: { scopes: ['task:read'], rate_limit: 5, monthly_quota: 10 },
      })
      expect(lower.status).toBe(201)
      expect(lower.body).toMatchObject({ rate_limit: 5, monthly_quota: 10 })
    })

    it('never mints admin or operator keys, nor scopes the creator lacks', async () => {
      const tenant = uniqueName('mint')
      const admin = await stack.key(tenant, ['admin'])
      for (const scopes of [['admin'], ['task:read', 'admin']]) {
        const r = await call(url(), 'POST', '/admin/keys', { key: admin, json: { scopes } })
        expect(r.status, JSON.stringify(scopes)).toBe(403)
        expect(r.body.errors).toContainEqual({ path: 'scopes', message: 'only the operator grants admin' })
      }
      const operator = await call(url(), 'POST', '/admin/keys', {
        key: admin,
        json: { scopes: ['operator'] },
      })
      expect(operator.status).toBe(400)
      expect(operator.body.errors[0].path).toBe('scopes.0')
      expect((await call(url(), 'GET', '/admin/keys', { key: admin })).body.keys).toHaveLength(1)
    })

    it('refuses a key that expires on arrival (400), from an admin key as from the operator', async () => {
      const tenant = uniqueName('doa')
      const admin = await stack.key(tenant, ['admin'])
      const operator = await stack.operatorKey()
      const past = new Date(Date.now() - 1000).toISOString()
      for (const [key, path] of [
        [admin, '/admin/keys'],
        [operator, `/operator/tenants/${tenant}/keys`],
      ] as const) {
        const r = await call(url(), 'POST', path, { key, json: { scopes: ['task:read'], expires_at: past } })
        expect(r.status, path).toBe(400)
        expect(r.body.code).toBe('INVALID_INPUT')
        expect(r.body.errors).toEqual([{ path: 'expires_at', message: 'must be in the future' }])
        expect(r.body.detail).toMatch(/dead on arrival/)
      }
      expect((await (await stack.api.keys()).list(tenant)).length).toBe(1)
      await expect(
        (await stack.api.keys()).create({ tenantId: tenant, scopes: ['task:read'], expiresAt: new Date(0) }),
      ).rejects.toMatchObject({
        code: 'INVALID_INPUT',
      })
    })
  })

  it('the operator grants admin, limits and scopes; narrowing a tenant takes effect on its keys at once', async () => {
    const url = stack.url.fastify
    const tenant = uniqueName('granted')
    const operator = await stack.operatorKey()
    // The operator makes the tenant's first admin.
    const made = await call(url, 'POST', `/operator/tenants/${tenant}/keys`, {
      key: operator,
      json: { scopes: ['admin'], name: 'first admin' },
    })
    expect(made.status).toBe(201)
    expect(made.body).toMatchObject({ tenant_id: tenant, scopes: ['admin'] })
    const admin = made.body.key as string
    expect((await call(url, 'GET', '/admin/keys', { key: admin })).status).toBe(200)

    // A tenant admin cannot reach the operator's endpoints, its own tenant's settings included.
    const lift = { rate_limit: 2_000_000_000, scopes: ['admin'] }
    for (const [method, path, json] of [
      ['GET', `/operator/tenants/${tenant}`, undefined],
      ['PUT', `/operator/tenants/${tenant}`, lift],
      ['POST', `/operator/tenants/${tenant}/keys`, lift],
    ] as const) {
      const r = await call(url, method, path, { key: admin, ...(json ? { json } : {}) })
      expect(r.status, `${method} ${path}`).toBe(403)
    }
    // Take admin away from the tenant: its admin key stops being one, without waiting for a cache.
    const narrowed = await call(url, 'PUT', `/operator/tenants/${tenant}`, {
      key: operator,
      json: { scopes: ['task:create', 'task:read'], rate_limit: 120, monthly_quota: 500 },
    })
    expect(narrowed.status).toBe(200)
    expect(narrowed.body).toMatchObject({
      tenant_id: tenant,
      rate_limit: 120,
      monthly_quota: 500,
      scopes: ['task:create', 'task:read'],
      configured: { rate_limit: 120, monthly_quota: 500, scopes: ['task:create', 'task:read'] },
    })
    expect((await call(url, 'GET', '/admin/keys', { key: admin })).status).toBe(403)
    // Its admin key still holds what the tenant keeps (admin holds every scope the tenant has).
    expect((await call(url, 'GET', '/quota', { key: admin })).body).toMatchObject({
      rate_limit: 120,
      monthly_quota: 500,
    })
    expect((await call(url, 'GET', '/tasks', { key: admin })).status).toBe(403)
    // Keys beyond the tenant's grant are refused, to the operator too (400 naming the field).
    for (const [json, field] of [
      [{ scopes: ['admin'] }, 'scopes'],
      [{ scopes: ['task:list'] }, 'scopes'],
      [{ scopes: ['task:read'], rate_limit: 121 }, 'rate_limit'],
      [{ scopes: ['task:read'], monthly_quota: 501 }, 'monthly_quota'],
    ] as const) {
      const r = await call(url, 'POST', `/operator/tenants/${tenant}/keys`, { key: operator, json })
      expect(r.status, JSON.stringify(json)).toBe(400)
      expect(r.body.errors[0].path).toBe(field)
    }
    // Back to the defaults (null), and the listing shows the tenant.
    const reset = await call(url, 'PUT', `/operator/tenants/${tenant}`, {
      key: operator,
      json: { scopes: null, rate_limit: null, monthly_quota: null },
    })
    expect(reset.body).toMatchObject({
      rate_limit: 1000,
      monthly_quota: null,
      configured: { rate_limit: null },
    })
    expect((await call(url, 'GET', '/admin/keys', { key: admin })).status).toBe(200)
    const all = await call(url, 'GET', '/operator/tenants', { key: operator })
    expect(all.body.tenants.map((t: { tenant_id: string }) => t.tenant_id)).toContain(tenant)
    const bad = await call(url, 'PUT', `/operator/tenants/${tenant}`, {
      key: operator,
      json: { rate_limit: 0, scopes: ['root'] },
    })
    expect(bad.status).toBe(400)
    expect(bad.body.errors.map((e: { path: string }) => e.path)).toEqual(['rate_limit', 'scopes.0'])

    const audit = await stack.api.audit()
    const updates = await audit.list({ action: 'tenant.update', limit: 1000 })
    expect(updates.filter((u) => u.targetId === tenant)).toHaveLength(2)
  })

  it('revokes any key through the operator, and an operator key acts on no tenant', async () => {
    const url = stack.url.node
    const operator = await stack.operatorKey()
    const tenant = uniqueName('rev')
    const key = await stack.key(tenant, ['task:read'])
    const info = (await (await stack.api.keys()).list(tenant))[0]!
    const forbidden = await call(url, 'GET', '/tasks', { key: operator })
    expect(forbidden.status).toBe(403)
    expect(forbidden.body.detail).toMatch(/operator key belongs to no tenant/)
    expect(
      (await call(url, 'POST', '/tasks', { key: operator, json: { name: 'send-email', payload: {} } }))
        .status,
    ).toBe(403)
    const revoked = await call(url, 'DELETE', `/operator/keys/${info.prefix}`, { key: operator })
    expect(revoked.status).toBe(200)
    expect(revoked.body).toMatchObject({ tenant_id: tenant, is_active: false })
    expect((await call(url, 'GET', '/quota', { key })).status).toBe(401)
    const listed = await call(url, 'GET', `/operator/tenants/${tenant}/keys`, { key: operator })
    expect(listed.body.keys[0]).toMatchObject({ key_id: info.id, is_active: false })
  })
})

describe.skipIf(!up)('limits and quotas per tenant', () => {
  let stack: Stack
  beforeAll(async () => {
    // The API's defaults for tenants the operator did not configure: 10 requests a minute, 4 tasks a month.
    stack = await startStack({ worker: false, rateLimit: 10, quota: 4 })
  }, 60_000)
  afterAll(() => stack?.close())

  it('gives two keys of one tenant one bucket, across two API processes', async () => {
    const other = await secondProcess(stack, { rateLimit: 10, quota: 4 })
    const tenant = uniqueName('bucket')
    const [k1, k2] = [await stack.key(tenant, ['task:read']), await stack.key(tenant, ['task:read'])]
    const neighbour = await stack.key(uniqueName('neighbour'), ['task:read'])
    const started = performance.now()
    const statuses: number[] = []
    for (let i = 0; i < 16; i++) {
      const r = await call(i % 2 === 0 ? stack.url.express : other, 'GET', '/quota', {
        key: i % 4 < 2 ? k1 : k2,
      })
      statuses.push(r.status)
      if (r.status === 429) {
        expect(r.body.code).toBe('RATE_LIMITED')
        expect(r.body.detail).toMatch(new RegExp(`tenant ${tenant} \\(all its keys together\\) may make 10`))
        expect(r.headers.get('ratelimit-limit')).toBe('10')
        expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0)
      }
    }
    // One token comes back every 6 s: a run this short gets the 10 in the bucket, plus one per 6 s.
    const refills = Math.floor((performance.now() - started) / 6000)
    expect(statuses.filter((s) => s === 200).length).toBe(10 + Math.min(refills, 6))
    // Another tenant has its own bucket.
    expect((await call(other, 'GET', '/quota', { key: neighbour })).status).toBe(200)
  }, 60_000)

  it('counts a tenant per queue: another queue’s API on the same Redis has its own bucket', async () => {
    const tenant = uniqueName('perqueue')
    const key = await stack.key(tenant, ['task:read'])
    for (let i = 0; i < 10; i++) await call(stack.url.express, 'GET', '/quota', { key })
    expect((await call(stack.url.express, 'GET', '/quota', { key })).status).toBe(429)
    const queue = createQueue({
      name: uniqueName('other-queue'),
      redis: REDIS_URL,
      postgres: DATABASE_URL,
      postgresSchema: stack.schema,
      logger: silent,
    })
    const api = createApi({ queue, tasks: [sendEmail], rateLimit: 10, logger: silent })
    try {
      const res = await api.handle({ method: 'GET', url: '/quota', headers: { 'x-api-key': key } })
      expect(res.status).toBe(200)
      expect(res.headers['ratelimit-remaining']).toBe('9')
    } finally {
      await api.close()
      await queue.close()
    }
  })

  it('gives two keys of one tenant one monthly quota, across two API processes; a submit-only key reads it', async () => {
    const other = await secondProcess(stack, { rateLimit: 1000, quota: 4 })
    const tenant = uniqueName('quota')
    const operator = await stack.operatorKey()
    // The operator lifts the rate limit for this tenant only (the quota stays the API's 4).
    await call(stack.url.node, 'PUT', `/operator/tenants/${tenant}`, {
      key: operator,
      json: { rate_limit: 1000 },
    })
    const k1 = await stack.key(tenant, ['task:create'])
    const k2 = await stack.key(tenant, ['task:create'])
    const answers = []
    for (let i = 0; i < 6; i++)
      answers.push(await submit(i % 2 === 0 ? stack.url.fastify : other, i % 2 === 0 ? k1 : k2, `q${i}`))
    expect(answers.map((a) => a.status)).toEqual([201, 201, 201, 201, 429, 429])
    for (const a of answers.slice(4)) {
      expect(a.body.code).toBe('QUOTA_EXCEEDED')
      expect(a.body.detail).toMatch(new RegExp(`tenant ${tenant}'s monthly quota of 4`))
    }
    // Exactly four tasks exist for the tenant.
    expect((await stack.queue.list({ tenantId: tenant, limit: 100 })).total).toBe(4)
    for (const [base, key] of [
      [stack.url.express, k1],
      [other, k2],
    ] as const) {
      const quota = await call(base, 'GET', '/quota', { key })
      expect(quota.status).toBe(200)
      expect(quota.body).toMatchObject({
        tenant_id: tenant,
        monthly_quota: 4,
        used: 4,
        remaining: 0,
        rate_limit: 1000,
        key: { used: 2, monthly_quota: null, remaining: null, rate_limit: null },
      })
    }
  }, 60_000)

  it('applies a key’s own limits as tighter sub-limits within its tenant’s', async () => {
    const tenant = uniqueName('sub')
    const operator = await stack.operatorKey()
    await call(stack.url.node, 'PUT', `/operator/tenants/${tenant}`, {
      key: operator,
      json: { rate_limit: 6, monthly_quota: 1000 },
    })
    const tight = await stack.key(tenant, ['task:create', 'task:read'], { rateLimit: 3, monthlyQuota: 2 })
    const loose = await stack.key(tenant, ['task:create', 'task:read'])
    // The tight key's own 3 run out first, and a refusal takes no token from the tenant's bucket.
    const tightStatuses = []
    for (let i = 0; i < 5; i++)
      tightStatuses.push((await call(stack.url.node, 'GET', '/quota', { key: tight })).status)
    expect(tightStatuses).toEqual([200, 200, 200, 429, 429])
    const refused = await call(stack.url.node, 'GET', '/quota', { key: tight })
    expect(refused.body.detail).toMatch(/this key may make 3 requests per minute/)
    expect(refused.headers.get('ratelimit-policy')).toBe('6;w=60, 3;w=60')
    // The tenant's bucket has the other 3 of its 6.
    const looseStatuses = []
    for (let i = 0; i < 4; i++)
      looseStatuses.push((await call(stack.url.node, 'GET', '/quota', { key: loose })).status)
    expect(looseStatuses).toEqual([200, 200, 200, 429])
    // The audit log says whose limit each refusal hit.
    const limited = await (await stack.api.audit()).list({ tenantId: tenant, action: 'rate.limited' })
    expect(limited.map((e) => e.details).reverse()).toEqual([
      { route: '/quota', limit: 3, bucket: 'key' },
      { route: '/quota', limit: 3, bucket: 'key' },
      { route: '/quota', limit: 3, bucket: 'key' },
      { route: '/quota', limit: 6, bucket: 'tenant' },
    ])

    const quota = uniqueName('subq')
    await call(stack.url.node, 'PUT', `/operator/tenants/${quota}`, {
      key: operator,
      json: { rate_limit: 1000 },
    })
    const small = await stack.key(quota, ['task:create'], { monthlyQuota: 2 })
    const rest = await stack.key(quota, ['task:create'])
    expect([
      (await submit(stack.url.node, small)).status,
      (await submit(stack.url.node, small)).status,
    ]).toEqual([201, 201])
    const over = await submit(stack.url.node, small)
    expect(over.status).toBe(429)
    expect(over.body.detail).toMatch(/this key's monthly quota of 2/)
    // The tenant's quota (the API's 4) still has room for its other key, and the refusal used none of it.
    expect([
      (await submit(stack.url.node, rest)).status,
      (await submit(stack.url.node, rest)).status,
    ]).toEqual([201, 201])
    expect((await submit(stack.url.node, rest)).body.detail).toMatch(/monthly quota of 4/)
  })
})

describe.skipIf(!up)('/metrics', () => {
  it('is refused to every tenant key and served to the operator, or privately by metricsHandler', async () => {
    const metrics = new RecordingMetrics()
    const stack = await startStack({ worker: false, metrics })
    const server = createServer(metricsHandler(stack.api))
    try {
      const admin = await stack.key(uniqueName('m'), ['admin'])
      expect((await call(stack.url.express, 'GET', '/metrics', { key: admin })).status).toBe(403)
      expect((await call(stack.url.express, 'GET', '/metrics')).status).toBe(401)
      const scraped = await call(stack.url.express, 'GET', '/metrics', { key: await stack.operatorKey() })
      expect(scraped.status).toBe(200)
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
      const direct = await call(base, 'GET', '/metrics')
      expect(direct.status).toBe(200)
      expect(direct.headers.get('content-type')).toContain('text/plain')
      // The operator's scrape above is counted in what the private handler serves.
      expect(direct.body).toMatch(
        /taskloom_http_requests_total\{route="\/metrics",method="GET",status="200"\} 1/,
      )
      expect((await call(base, 'GET', '/tasks')).status).toBe(404)
      expect((await call(base, 'POST', '/metrics')).status).toBe(405)
    } finally {
      server.close()
      await stack.close()
    }
  })

  it('refuses the removed publicMetrics option loudly', async () => {
    const queue = createQueue({ name: uniqueName('pm'), redis: REDIS_URL, logger: silent })
    try {
      expect(() => createApi({ queue, tasks: [sendEmail], publicMetrics: true } as never)).toThrow(
        /publicMetrics was removed/,
      )
    } finally {
      await queue.close()
    }
  })
})

describe('per-tenant limits without the durable stack', () => {
  /** Alternates two keys of one tenant over GET /quota; answers the statuses. */
  async function burst(api: ReturnType<typeof createApi>, keys: string[], n: number): Promise<number[]> {
    const statuses: number[] = []
    for (let i = 0; i < n; i++) {
      const res = await api.handle({
        method: 'GET',
        url: '/quota',
        headers: { 'x-api-key': keys[i % keys.length]! },
      })
      statuses.push(res.status)
    }
    return statuses
  }

  it('embedded (in-process broker, PGlite): one bucket per tenant in this process', async () => {
    const queue = createQueue({ name: uniqueName('embedded'), logger: silent })
    const api = createApi({ queue, tasks: [sendEmail], rateLimit: 3, logger: silent })
    try {
      const keys = await api.keys()
      const tenant = uniqueName('emb')
      const both = [
        (await keys.create({ tenantId: tenant, scopes: ['task:read'] })).key,
        (await keys.create({ tenantId: tenant, scopes: ['task:read'] })).key,
      ]
      expect(await burst(api, both, 5)).toEqual([200, 200, 200, 429, 429])
      // Another tenant has its own bucket; a lowered limit applies at once: the 2 tokens left of 3
      // are cut to the new capacity of 1.
      const other = uniqueName('emb')
      const its = (await keys.create({ tenantId: other, scopes: ['task:read'] })).key
      expect(await burst(api, [its], 1)).toEqual([200])
      await keys.tenants.set(other, { rateLimit: 1 })
      api.forgetTenant(other)
      expect(await burst(api, [its], 2)).toEqual([200, 429])
    } finally {
      await api.close()
      await queue.close()
    }
  }, 60_000)

  it.skipIf(!up)(
    'Redis-only (keys and tenants in the API’s own PostgreSQL): one bucket per tenant in Redis',
    async () => {
      const schema = uniqueName('redisonly').replaceAll('-', '_')
      const queue = createQueue({ name: uniqueName('redis-only'), redis: REDIS_URL, logger: silent })
      const api = createApi({
        queue,
        tasks: [sendEmail],
        postgres: DATABASE_URL,
        postgresSchema: schema,
        migrate: true,
        logger: silent,
      })
      const second = createApi({
        queue,
        tasks: [sendEmail],
        postgres: DATABASE_URL,
        postgresSchema: schema,
        logger: silent,
      })
      try {
        const keys = await api.keys()
        const tenant = uniqueName('ro')
        await keys.tenants.set(tenant, { rateLimit: 4 })
        const a = (await keys.create({ tenantId: tenant, scopes: ['task:read'] })).key
        const b = (await keys.create({ tenantId: tenant, scopes: ['task:read'] })).key
        const statuses = [...(await burst(api, [a, b], 3)), ...(await burst(second, [b, a], 3))]
        expect(statuses).toEqual([200, 200, 200, 200, 429, 429])
      } finally {
        await second.close()
        await api.close()
        await queue.close()
        const { default: pg } = await import('pg')
        const client = new pg.Client(DATABASE_URL)
        await client.connect()
        await client.query(`drop schema if exists "${schema}" cascade`)
        await client.end()
      }
    },
    60_000,
  )
})

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sleep, until } from '../helpers/backends.js'
import { hasPostgres, hasRedis } from '../helpers/services.js'
import { MapSchedules, RecordingMetrics, workersOf } from './fakes.js'
import { call, SERVERS, type Stack, startStack } from './harness.js'

const up = (await hasRedis()) && (await hasPostgres())

describe.skipIf(!up)('admin, schedules, keys, metrics and audit', () => {
  let stack: Stack
  let admin: string
  let operator: string
  const schedules = new MapSchedules()
  const metrics = new RecordingMetrics()
  beforeAll(async () => {
    stack = await startStack({ schedules, workers: workersOf(10), metrics })
    admin = await stack.key('ops', ['admin'])
    operator = await stack.operatorKey()
  }, 60_000)
  afterAll(() => stack?.close())

  describe.each(SERVERS)('through %s', (server) => {
    const url = () => stack.url[server]

    it('lists, inspects and retries dead-lettered tasks, one or all', async () => {
      const ids: string[] = []
      for (const why of ['one', 'two']) {
        ids.push(
          (await call(url(), 'POST', '/tasks', { key: admin, json: { name: 'doomed', payload: { why } } }))
            .body.task_id,
        )
      }
      const listed = await until(async () => {
        const r = await call(url(), 'GET', '/admin/dlq', { key: admin })
        return ids.every((id) => r.body.tasks.some((t: { task_id: string }) => t.task_id === id)) ? r : null
      })
      expect(listed.body.tasks.every((t: { status: string }) => t.status === 'failed')).toBe(true)
      const inspect = await call(url(), 'GET', `/admin/dlq/${ids[0]}`, { key: admin })
      expect(inspect.status).toBe(200)
      expect(inspect.body).toMatchObject({
        task_id: ids[0],
        status: 'failed',
        payload: { why: 'one' },
        // max_retries 0: its one attempt failed, and no retry was made.
        retry_count: 0,
        max_retries: 0,
        duration_ms: expect.any(Number),
      })
      expect(inspect.body.history[0]).toMatchObject({
        attempt: 1,
        outcome: 'error',
        error: 'Error: doomed: one',
      })
      expect(inspect.body.error).toBe('Error: doomed: one')

      const one = await call(url(), 'POST', `/admin/dlq/${ids[0]}/retry`, { key: admin })
      expect(one.status).toBe(200)
      expect(one.body.task_id).toBe(ids[0])
      const fine = await call(url(), 'POST', '/tasks', {
        key: admin,
        json: { name: 'send-email', payload: { to: 'f@f.co', subject: 's' } },
      })
      await until(async () => (await stack.queue.get(fine.body.task_id))?.status === 'completed')
      const notDead = await call(url(), 'POST', `/admin/dlq/${fine.body.task_id}/retry`, { key: admin })
      expect(notDead.status).toBe(409)
      expect(notDead.body.code).toBe('NOT_IN_DLQ')
      // The retried task fails again (its handler always throws); wait until both sit in the DLQ.
      await until(
        async () =>
          (await stack.queue.get(ids[0]!))?.status === 'failed' &&
          (await stack.queue.get(ids[0]!))?.retryCount === 1,
      )
      await until(async () => {
        const r = await call(url(), 'GET', `/admin/dlq`, { key: admin })
        return r.body.tasks.filter((t: { task_id: string }) => ids.includes(t.task_id)).length === 2
      })
      const all = await call(url(), 'POST', '/admin/dlq/retry', { key: admin })
      expect(all.status).toBe(200)
      expect(all.body.retried).toBeGreaterThanOrEqual(2)
      expect((await call(url(), 'GET', `/admin/dlq/not-a-task`, { key: admin })).status).toBe(404)
    })

    it('lists the worker fleet to the operator only (it is shared by every tenant)', async () => {
      const r = await call(url(), 'GET', '/workers', { key: operator })
      expect(r.status).toBe(200)
      expect(r.body.workers[0]).toMatchObject({ status: 'ACTIVE', pid: process.pid, concurrency: 10 })
      const refused = await call(url(), 'GET', '/workers', { key: admin })
      expect(refused.status).toBe(403)
      expect(refused.body.detail).toMatch(/operator only/)
    })

    it('creates, lists and revokes API keys; a revoked key stops working at once', async () => {
      const created = await call(url(), 'POST', '/admin/keys', {
        key: admin,
        json: { name: 'ci', scopes: ['task:read', 'task:list'], rate_limit: 500, monthly_quota: 10 },
      })
      expect(created.status).toBe(201)
      expect(created.body).toMatchObject({
        tenant_id: 'ops',
        name: 'ci',
        scopes: ['task:read', 'task:list'],
        rate_limit: 500,
        monthly_quota: 10,
        is_active: true,
        revoked_at: null,
        last_used_at: null,
      })
      expect(created.body.key).toMatch(/^tlk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/)
      expect(created.body.key.startsWith(created.body.prefix)).toBe(true)
      const secret = created.body.key
      const before = Date.now()
      expect((await call(url(), 'GET', '/tasks', { key: secret })).status).toBe(200)
      // The use is recorded off the request path, so it shows up shortly after.
      const { list, listed } = await until(async () => {
        const list = await call(url(), 'GET', '/admin/keys', { key: admin })
        const listed = list.body.keys.find((k: { key_id: string }) => k.key_id === created.body.key_id)
        return listed?.last_used_at ? { list, listed } : null
      })
      expect(Date.parse(listed.last_used_at)).toBeGreaterThanOrEqual(before)
      expect(Date.parse(listed.last_used_at)).toBeLessThanOrEqual(Date.now())
      expect(JSON.stringify(list.body)).not.toContain(secret.slice(17))
      const revoked = await call(url(), 'DELETE', `/admin/keys/${created.body.key_id}`, { key: admin })
      expect(revoked.status).toBe(200)
      expect(revoked.body).toMatchObject({ is_active: false, revoked_at: expect.any(String) })
      expect((await call(url(), 'GET', '/tasks', { key: secret })).status).toBe(401)
      expect((await call(url(), 'DELETE', '/admin/keys/no-such-key', { key: admin })).status).toBe(404)
      const bad = await call(url(), 'POST', '/admin/keys', { key: admin, json: { scopes: ['root'] } })
      expect(bad.status).toBe(400)
      expect(bad.body.errors[0].path).toBe('scopes.0')
    })

    it('refuses an expired key', async () => {
      const keys = await stack.api.keys()
      const { key } = await keys.create({
        tenantId: 'ops',
        scopes: ['task:read'],
        expiresAt: new Date(Date.now() + 300),
      })
      expect((await call(url(), 'GET', '/quota', { key })).status).toBe(200)
      await sleep(400)
      expect((await call(url(), 'GET', '/quota', { key })).status).toBe(401)
    })

    it('creates, lists and deletes schedules, also through POST /tasks with `schedule`', async () => {
      const made = await call(url(), 'POST', '/schedules', {
        key: admin,
        json: {
          id: `daily-${server}`,
          name: 'send-email',
          cron: '0 9 * * *',
          payload: { to: 'd@d.co', subject: 'daily' },
          timezone: 'Europe/Paris',
        },
      })
      expect(made.status).toBe(201)
      expect(made.body).toMatchObject({
        schedule_id: `daily-${server}`,
        name: 'send-email',
        cron: '0 9 * * *',
        timezone: 'Europe/Paris',
        paused: false,
      })
      const viaTasks = await call(url(), 'POST', '/tasks', {
        key: admin,
        json: { name: 'send-email', payload: { to: 'e@e.co', subject: 'every 5' }, schedule: '*/5 * * * *' },
      })
      expect(viaTasks.status).toBe(201)
      expect(viaTasks.body).toMatchObject({ cron: '*/5 * * * *', schedule_id: expect.any(String) })
      const badCron = await call(url(), 'POST', '/tasks', {
        key: admin,
        json: { name: 'send-email', payload: {}, schedule: 'every day' },
      })
      expect(badCron.status).toBe(400)
      expect(badCron.body.errors[0].path).toBe('cron')
      const list = await call(url(), 'GET', '/schedules', { key: admin })
      const ids = list.body.schedules.map((s: { schedule_id: string }) => s.schedule_id)
      expect(ids).toEqual(expect.arrayContaining([`daily-${server}`, viaTasks.body.schedule_id]))
      expect((await call(url(), 'DELETE', `/schedules/daily-${server}`, { key: admin })).status).toBe(204)
      expect((await call(url(), 'DELETE', `/schedules/daily-${server}`, { key: admin })).status).toBe(404)
    })

    it('serves metrics (operator only) and reports each request by route template', async () => {
      const text = await call(url(), 'GET', '/metrics', { key: operator })
      expect(text.status).toBe(200)
      expect(text.headers.get('content-type')).toContain('text/plain')
      expect(text.body).toMatch(
        /taskloom_http_requests_total\{route="\/admin\/dlq\/:id",method="GET",status="200"\} \d+/,
      )
      const reader = await stack.key('ops', ['task:read'])
      expect((await call(url(), 'GET', '/metrics', { key: reader })).status).toBe(403)
      // A tenant's admin key sees only its own tenant; the metrics show every tenant.
      const tenantAdmin = await call(url(), 'GET', '/metrics', { key: admin })
      expect(tenantAdmin.status).toBe(403)
      expect(tenantAdmin.body.code).toBe('FORBIDDEN')
    })
  })

  it('audits submissions, cancellations, key changes and authentication failures with request ids', async () => {
    const url = stack.url.node
    const submitted = await call(url, 'POST', '/tasks', {
      key: admin,
      json: {
        name: 'send-email',
        payload: { to: 'q@q.co', subject: 's' },
        run_at: new Date(Date.now() + 60_000).toISOString(),
      },
      headers: { 'x-request-id': 'req-audit-1' },
    })
    expect(submitted.headers.get('x-request-id')).toBe('req-audit-1')
    await call(url, 'POST', `/tasks/${submitted.body.task_id}/cancel`, {
      key: admin,
      headers: { 'x-request-id': 'req-audit-2' },
    })
    await call(url, 'GET', '/tasks', {
      key: 'tlk_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
      headers: { 'x-request-id': 'req-audit-3' },
    })
    const audit = await stack.api.audit()
    const [submit] = await audit.list({ requestId: 'req-audit-1' })
    expect(submit).toMatchObject({
      action: 'task.submit',
      tenantId: 'ops',
      targetId: submitted.body.task_id,
      keyId: expect.any(String),
    })
    const [cancel] = await audit.list({ requestId: 'req-audit-2' })
    expect(cancel).toMatchObject({ action: 'task.cancel', tenantId: 'ops', targetId: submitted.body.task_id })
    const [failed] = await audit.list({ requestId: 'req-audit-3' })
    expect(failed).toMatchObject({
      action: 'auth.failed',
      tenantId: null,
      details: { reason: 'unknown', prefix: 'tlk_0123456789ab' },
    })
    expect((await audit.list({ tenantId: 'ops', action: 'key.revoke' })).length).toBeGreaterThanOrEqual(3)
    expect((await audit.list({ tenantId: 'ops', action: 'key.create' })).length).toBeGreaterThanOrEqual(3)
  })

  it('purges audit entries older than the retention', async () => {
    const audit = await stack.api.audit()
    await audit.record({
      action: 'task.submit',
      tenantId: 'old',
      keyId: null,
      requestId: 'ancient',
      at: new Date(Date.now() - 91 * 86_400_000),
    })
    await audit.record({
      action: 'task.submit',
      tenantId: 'old',
      keyId: null,
      requestId: 'recent',
      at: new Date(Date.now() - 89 * 86_400_000),
    })
    expect(await stack.api.purgeAudit()).toBeGreaterThanOrEqual(1)
    const left = await audit.list({ tenantId: 'old' })
    expect(left.map((e) => e.requestId)).toEqual(['recent'])
  })
})

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { until } from '../helpers/backends.js'
import { hasPostgres, hasRedis } from '../helpers/services.js'
import { ALL_SCOPES, call, SERVERS, type Stack, startStack } from './harness.js'

const up = (await hasRedis()) && (await hasPostgres())

describe.skipIf(!up)('the REST API on real servers', () => {
  let stack: Stack
  let key: string
  let operator: string
  let readOnly: string
  let betaKey: string
  beforeAll(async () => {
    stack = await startStack()
    key = await stack.key('acme', [...ALL_SCOPES])
    operator = await stack.operatorKey()
    readOnly = await stack.key('acme', ['task:read'])
    betaKey = await stack.key('beta', [...ALL_SCOPES])
  }, 60_000)
  afterAll(() => stack?.close())

  describe.each(SERVERS)('through %s', (server) => {
    const url = () => stack.url[server]

    it('answers /health and /ready without a key', async () => {
      const health = await call(url(), 'GET', '/health')
      expect(health.status).toBe(200)
      expect(health.body).toEqual({
        status: 'healthy',
        version: expect.any(String),
        uptime_seconds: expect.any(Number),
      })
      const ready = await call(url(), 'GET', '/ready')
      expect(ready.status).toBe(200)
      expect(ready.body).toEqual({ status: 'ready', checks: { redis: 'ok', postgres: 'ok' } })
    })

    it('submits a task (201), reports its status and result in the spec shape', async () => {
      const created = await call(url(), 'POST', '/tasks', {
        key,
        json: {
          name: 'send-email',
          payload: { to: 'a@b.co', subject: 'hi' },
          priority: 'high',
          max_retries: 2,
          timeout: 30,
        },
      })
      expect(created.status).toBe(201)
      expect(created.body).toEqual({
        task_id: expect.any(String),
        status: 'queued',
        created_at: expect.any(String),
      })
      expect(created.headers.get('x-request-id')).toBeTruthy()
      expect(created.headers.get('ratelimit-limit')).toBe('1000')
      const id = created.body.task_id
      const done = await until(async () => {
        const r = await call(url(), 'GET', `/tasks/${id}`, { key })
        return r.body.status === 'completed' ? r : null
      })
      expect(done.body).toMatchObject({
        task_id: id,
        name: 'send-email',
        status: 'completed',
        priority: 'high',
        retry_count: 0,
        max_retries: 2,
        timeout: 30,
        error: null,
      })
      expect(typeof done.body.duration_ms).toBe('number')
      expect(Date.parse(done.body.started_at)).toBeLessThanOrEqual(Date.parse(done.body.completed_at))
      const result = await call(url(), 'GET', `/tasks/${id}/result`, { key })
      expect(result.body).toEqual({
        task_id: id,
        status: 'completed',
        result: { messageId: 'msg-a@b.co' },
        error: null,
      })
    })

    it('answers a repeated idempotency key with 200 and Idempotent-Replayed', async () => {
      const body = {
        name: 'send-email',
        payload: { to: 'x@y.co', subject: 's' },
        idempotency_key: `k-${server}`,
      }
      const first = await call(url(), 'POST', '/tasks', { key, json: body })
      const again = await call(url(), 'POST', '/tasks', { key, json: body })
      expect(first.status).toBe(201)
      expect(again.status).toBe(200)
      expect(again.headers.get('idempotent-replayed')).toBe('true')
      expect(again.body.task_id).toBe(first.body.task_id)
    })

    it('names every invalid field (400), and an unknown task name (400)', async () => {
      const bad = await call(url(), 'POST', '/tasks', {
        key,
        json: { name: 'send-email', payload: { to: 'nope', subject: '' }, priority: 'urgent', maxRetries: 1 },
      })
      expect(bad.status).toBe(400)
      expect(bad.headers.get('content-type')).toBe('application/problem+json')
      expect(bad.body.code).toBe('INVALID_INPUT')
      const paths = bad.body.errors.map((e: { path: string }) => e.path)
      expect(paths).toEqual(expect.arrayContaining(['priority', 'maxRetries']))
      const payload = await call(url(), 'POST', '/tasks', {
        key,
        json: { name: 'send-email', payload: { to: 'nope', subject: '' } },
      })
      expect(payload.status).toBe(400)
      expect(payload.body.errors.map((e: { path: string }) => e.path).sort()).toEqual([
        'payload.subject',
        'payload.to',
      ])
      const unknown = await call(url(), 'POST', '/tasks', {
        key,
        json: { name: 'no-such-task', payload: {} },
      })
      expect(unknown.status).toBe(400)
      expect(unknown.body.code).toBe('UNKNOWN_TASK')
    })

    it('refuses a wrong content type (415), a body over the limit (413) and broken JSON (400)', async () => {
      const text = await call(url(), 'POST', '/tasks', {
        key,
        body: 'name=x',
        headers: { 'content-type': 'text/plain' },
      })
      expect(text.status).toBe(415)
      expect(text.body.code).toBe('UNSUPPORTED_MEDIA_TYPE')
      const huge = await call(url(), 'POST', '/tasks', {
        key,
        body: JSON.stringify({ name: 'send-email', payload: { pad: 'x'.repeat(2_000_000) } }),
        headers: { 'content-type': 'application/json' },
      })
      expect(huge.status).toBe(413)
      expect(huge.body.code).toBe('PAYLOAD_TOO_LARGE')
      const broken = await call(url(), 'POST', '/tasks', {
        key,
        body: '{"name":',
        headers: { 'content-type': 'application/json' },
      })
      expect(broken.status).toBe(400)
      expect(broken.body.code).toBe('INVALID_JSON')
    })

    it('needs a valid key (401) with the right scope (403)', async () => {
      const none = await call(url(), 'GET', '/tasks')
      expect(none.status).toBe(401)
      expect(none.body.code).toBe('UNAUTHENTICATED')
      const wrong = await call(url(), 'GET', '/tasks', {
        key: 'tlk_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
      })
      expect(wrong.status).toBe(401)
      const forged = await call(url(), 'GET', '/tasks', { key: `${key.slice(0, -3)}abc` })
      expect(forged.status).toBe(401)
      const scope = await call(url(), 'POST', '/tasks', {
        key: readOnly,
        json: { name: 'send-email', payload: {} },
      })
      expect(scope.status).toBe(403)
      expect(scope.body.code).toBe('FORBIDDEN')
      const adminOnly = await call(url(), 'GET', '/admin/dlq', { key })
      expect(adminOnly.status).toBe(403)
    })

    it('answers 404 for an unknown task or endpoint and 405 for a wrong method', async () => {
      const missing = await call(url(), 'GET', '/tasks/does-not-exist', { key })
      expect(missing.status).toBe(404)
      expect(missing.body).toMatchObject({
        code: 'NOT_FOUND',
        status: 404,
        type: expect.stringContaining('not-found'),
      })
      expect((await call(url(), 'GET', '/nope', { key })).status).toBe(404)
      const method = await call(url(), 'PUT', '/tasks', { key })
      expect(method.status).toBe(405)
      expect(method.headers.get('allow')).toContain('POST')
    })

    it('cancels a pending task, refuses a processing (409) or finished one (409)', async () => {
      const later = await call(url(), 'POST', '/tasks', {
        key,
        json: {
          name: 'send-email',
          payload: { to: 'l@b.co', subject: 's' },
          run_at: new Date(Date.now() + 3_600_000).toISOString(),
        },
      })
      expect(later.body.status).toBe('pending')
      const cancel = await call(url(), 'POST', `/tasks/${later.body.task_id}/cancel`, { key })
      expect(cancel.status).toBe(200)
      expect(cancel.body).toEqual({ task_id: later.body.task_id, status: 'cancelled' })
      const again = await call(url(), 'POST', `/tasks/${later.body.task_id}/cancel`, { key })
      expect(again.status).toBe(409)
      expect(again.body.code).toBe('TASK_FINISHED')

      const slow = await call(url(), 'POST', '/tasks', {
        key,
        json: { name: 'sleep', payload: { ms: 3000 } },
      })
      await until(
        async () =>
          (await call(url(), 'GET', `/tasks/${slow.body.task_id}`, { key })).body.status === 'processing',
      )
      const busy = await call(url(), 'POST', `/tasks/${slow.body.task_id}/cancel`, { key })
      expect(busy.status).toBe(409)
      expect(busy.body.code).toBe('TASK_PROCESSING')
    })

    it('lists the tenant’s tasks with status filter and paging', async () => {
      const list = await call(url(), 'GET', '/tasks?limit=2&offset=0', { key })
      expect(list.status).toBe(200)
      expect(list.body).toMatchObject({ limit: 2, offset: 0, total: expect.any(Number) })
      expect(list.body.tasks.length).toBeLessThanOrEqual(2)
      expect(list.body.total).toBeGreaterThanOrEqual(2)
      const cancelled = await call(url(), 'GET', '/tasks?status=cancelled', { key })
      expect(cancelled.body.tasks.length).toBeGreaterThanOrEqual(1)
      for (const t of cancelled.body.tasks) expect(t.status).toBe('cancelled')
      const bad = await call(url(), 'GET', '/tasks?status=done&limit=0', { key })
      expect(bad.status).toBe(400)
      expect(bad.body.code).toBe('INVALID_QUERY')
      expect(bad.body.errors.map((e: { path: string }) => e.path).sort()).toEqual(['limit', 'status'])
    })

    it('reports usage against the quota', async () => {
      const quota = await call(url(), 'GET', '/quota', { key })
      expect(quota.status).toBe(200)
      expect(quota.body).toMatchObject({
        tenant_id: 'acme',
        monthly_quota: null,
        remaining: null,
        rate_limit: 1000,
      })
      expect(quota.body.used).toBeGreaterThan(0)
    })

    it("serves the queue's own schedules and worker fleet by default", async () => {
      const id = `nightly-${server}`
      const made = await call(url(), 'POST', '/schedules', {
        key,
        json: { id, name: 'send-email', cron: '0 3 * * *', payload: { to: 'a@b.co', subject: 'hi' } },
      })
      expect(made.status).toBe(201)
      expect(made.body).toMatchObject({ schedule_id: id, cron: '0 3 * * *' })
      // Stored in the queue's own schedules (tenant-prefixed id), with its next fire time.
      const stored = await stack.queue.schedules.get(`acme:${id}`)
      expect(stored).toMatchObject({ taskName: 'send-email', tenantId: 'acme', paused: false })
      expect(stored?.nextRunAt?.getUTCHours()).toBe(3)
      const bad = await call(url(), 'POST', '/schedules', {
        key,
        json: { name: 'send-email', cron: '61 * * * *', payload: { to: 'a@b.co', subject: 'hi' } },
      })
      expect(bad.status).toBe(400)
      const listed = await call(url(), 'GET', '/schedules', { key })
      expect(listed.body.schedules.map((s: { schedule_id: string }) => s.schedule_id)).toContain(id)
      expect((await call(url(), 'DELETE', `/schedules/${id}`, { key })).status).toBe(204)
      expect(await stack.queue.schedules.get(`acme:${id}`)).toBeNull()

      // POST /tasks with `schedule`: the idempotency key names the schedule, so a retried request
      // answers the one it made (200, replayed) instead of making a second.
      const viaTasks = {
        name: 'send-email',
        payload: { to: 'a@b.co', subject: 'weekly' },
        schedule: '0 9 * * 1',
        idempotency_key: `weekly-${server}`,
      }
      const first = await call(url(), 'POST', '/tasks', { key, json: viaTasks })
      expect(first.status).toBe(201)
      expect(first.body).toMatchObject({ schedule_id: `weekly-${server}`, cron: '0 9 * * 1' })
      const again = await call(url(), 'POST', '/tasks', { key, json: viaTasks })
      expect(again.status).toBe(200)
      expect(again.headers.get('idempotent-replayed')).toBe('true')
      expect(again.body).toEqual(first.body)
      const mine = (await stack.queue.schedules.list({ tenantId: 'acme', limit: 1000 })).filter(
        (s) => s.id === `acme:weekly-${server}`,
      )
      expect(mine).toHaveLength(1)
      // Concurrent retries of one request: one 201, the rest replays of it.
      const raced = await Promise.all(
        Array.from({ length: 5 }, () =>
          call(url(), 'POST', '/tasks', { key, json: { ...viaTasks, idempotency_key: `raced-${server}` } }),
        ),
      )
      expect(raced.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 201])
      expect(new Set(raced.map((r) => r.body.schedule_id))).toEqual(new Set([`raced-${server}`]))
      expect((await call(url(), 'DELETE', `/schedules/raced-${server}`, { key })).status).toBe(204)
      // Another tenant's same key is its own schedule, not a replay of acme's.
      const other = await call(url(), 'POST', '/tasks', { key: betaKey, json: viaTasks })
      expect(other.status).toBe(201)
      // A one-off time and a schedule contradict each other; a key that cannot name a schedule is refused.
      for (const [path, json] of [
        ['run_at', { ...viaTasks, run_at: new Date(Date.now() + 60_000).toISOString() }],
        ['idempotency_key', { ...viaTasks, idempotency_key: 'has space' }],
      ] as const) {
        const r = await call(url(), 'POST', '/tasks', { key, json })
        expect(r.status).toBe(400)
        expect(r.body.errors[0].path).toBe(path)
      }
      expect((await call(url(), 'DELETE', `/schedules/weekly-${server}`, { key })).status).toBe(204)
      expect((await call(url(), 'DELETE', `/schedules/weekly-${server}`, { key: betaKey })).status).toBe(204)

      const workers = await call(url(), 'GET', '/workers', { key: operator })
      expect(workers.status).toBe(200)
      expect(workers.body.workers).toContainEqual(
        expect.objectContaining({
          worker_id: stack.worker?.id,
          status: expect.stringMatching(/^(ACTIVE|IDLE)$/),
        }),
      )
    })

    it('answers a 501 problem for /metrics when no metrics were given', async () => {
      const r = await call(url(), 'GET', '/metrics', { key: operator })
      expect(r.status).toBe(501)
      expect(r.body.code).toBe('NOT_IMPLEMENTED')
    })
  })
})

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { until } from '../helpers/backends.js'
import { hasPostgres, hasRedis } from '../helpers/services.js'
import { MapSchedules, workersOf } from './fakes.js'
import { call, SERVERS, type Stack, startStack } from './harness.js'

const up = (await hasRedis()) && (await hasPostgres())

describe.skipIf(!up)('tenant isolation: tenant A’s key against tenant B’s resources', () => {
  let stack: Stack
  let a: string
  let b: string
  const bIds: Record<'done' | 'pending' | 'dead', string> = { done: '', pending: '', dead: '' }
  let bKeyId = ''
  const schedules = new MapSchedules()

  beforeAll(async () => {
    stack = await startStack({ schedules, workers: workersOf(10) })
    a = await stack.key('tenant-a', ['admin'])
    b = await stack.key('tenant-b', ['admin'])
    const url = stack.url.node
    const submit = async (json: unknown) => (await call(url, 'POST', '/tasks', { key: b, json })).body.task_id
    bIds.done = await submit({
      name: 'send-email',
      payload: { to: 'b@b.co', subject: 's' },
      idempotency_key: 'shared',
    })
    bIds.pending = await submit({
      name: 'send-email',
      payload: { to: 'b@b.co', subject: 's' },
      run_at: new Date(Date.now() + 3_600_000).toISOString(),
    })
    bIds.dead = await submit({ name: 'doomed', payload: { why: 'b' } })
    await until(async () => (await stack.queue.get(bIds.dead))?.status === 'failed')
    await until(async () => (await stack.queue.get(bIds.done))?.status === 'completed')
    // The store's view of the dead task (the DLQ list reads it) catches up through the change feed.
    await until(async () => (await call(url, 'GET', '/admin/dlq', { key: b })).body.total === 1)
    expect(
      (
        await call(url, 'POST', '/schedules', {
          key: b,
          json: { id: 'nightly', name: 'send-email', cron: '0 3 * * *' },
        })
      ).status,
    ).toBe(201)
    const created = await call(url, 'POST', '/admin/keys', { key: b, json: { scopes: ['task:read'] } })
    bKeyId = created.body.key_id
  }, 60_000)
  afterAll(() => stack?.close())

  describe.each(SERVERS)('through %s', (server) => {
    const url = () => stack.url[server]

    it('answers 404, never 403, on every endpoint that names one of B’s resources', async () => {
      const probes: [string, string][] = [
        ['GET', `/tasks/${bIds.done}`],
        ['GET', `/tasks/${bIds.done}/result`],
        ['POST', `/tasks/${bIds.pending}/cancel`],
        ['GET', `/admin/dlq/${bIds.dead}`],
        ['POST', `/admin/dlq/${bIds.dead}/retry`],
        ['DELETE', '/schedules/nightly'],
        ['DELETE', `/admin/keys/${bKeyId}`],
      ]
      for (const [method, path] of probes) {
        const r = await call(url(), method, path, { key: a })
        expect(r.status, `${method} ${path}`).toBe(404)
        expect(r.body.code).toBe('NOT_FOUND')
      }
    })

    it('shows none of B’s resources in A’s lists, and retry-all leaves B’s dead tasks alone', async () => {
      const lists = await Promise.all([
        call(url(), 'GET', '/tasks', { key: a }),
        call(url(), 'GET', '/admin/dlq', { key: a }),
        call(url(), 'GET', '/admin/keys', { key: a }),
        call(url(), 'GET', '/schedules', { key: a }),
      ])
      const [tasks, dlq, keys, scheds] = lists.map((l) => l.body)
      const bTaskIds = Object.values(bIds)
      expect(tasks.tasks.filter((t: { task_id: string }) => bTaskIds.includes(t.task_id))).toEqual([])
      expect(dlq.tasks).toEqual([])
      expect(keys.keys.every((k: { tenant_id: string }) => k.tenant_id === 'tenant-a')).toBe(true)
      expect(scheds.schedules).toEqual([])
      const retried = await call(url(), 'POST', '/admin/dlq/retry', { key: a })
      expect(retried.body).toEqual({ retried: 0 })
    })

    it('keeps idempotency keys per tenant', async () => {
      const json = { name: 'send-email', payload: { to: 'a@a.co', subject: 's' }, idempotency_key: `shared` }
      const first = await call(url(), 'POST', '/tasks', { key: a, json })
      expect([200, 201]).toContain(first.status)
      expect(first.body.task_id).not.toBe(bIds.done)
    })
  })

  it('left B’s resources untouched', async () => {
    expect((await stack.queue.get(bIds.pending))?.status).toBe('pending')
    expect((await stack.queue.get(bIds.dead))?.status).toBe('failed')
    expect(await schedules.get('tenant-b:nightly')).not.toBeNull()
    const keys = await (await stack.api.keys()).list('tenant-b')
    expect(keys.find((k) => k.id === bKeyId)?.revokedAt).toBeNull()
  })
})

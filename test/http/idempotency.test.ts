/** A repeated Idempotency key over REST: 200 replay for the same request, 422 for another one. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hasPostgres, hasRedis } from '../helpers/services.js'
import { ALL_SCOPES, call, SERVERS, type Stack, startStack } from './harness.js'

const up = (await hasRedis()) && (await hasPostgres())

describe.skipIf(!up)('idempotency keys over REST', () => {
  let stack: Stack
  let key: string
  beforeAll(async () => {
    stack = await startStack({ worker: false })
    key = await stack.key('idem', [...ALL_SCOPES])
  }, 60_000)
  afterAll(() => stack?.close())

  describe.each(SERVERS)('through %s', (server) => {
    const url = () => stack.url[server]
    const submit = (json: unknown) => call(url(), 'POST', '/tasks', { key, json })

    it('replays the same name and payload (200) and refuses another payload (422)', async () => {
      const k = `order-${server}`
      const first = await submit({
        name: 'send-email',
        payload: { to: 'a@b.co', subject: 'hi' },
        idempotency_key: k,
      })
      expect(first.status).toBe(201)
      const replay = await submit({
        name: 'send-email',
        payload: { subject: 'hi', to: 'a@b.co' },
        idempotency_key: k,
      })
      expect(replay.status).toBe(200)
      expect(replay.headers.get('idempotent-replayed')).toBe('true')
      expect(replay.body.task_id).toBe(first.body.task_id)
      const changed = await submit({
        name: 'send-email',
        payload: { to: 'a@b.co', subject: 'bye' },
        idempotency_key: k,
      })
      expect(changed.status).toBe(422)
      expect(changed.headers.get('content-type')).toMatch(/^application\/problem\+json/)
      expect(changed.body).toMatchObject({
        status: 422,
        code: 'IDEMPOTENCY_CONFLICT',
        errors: [{ path: 'idempotency_key', message: expect.any(String) }],
      })
      expect(changed.body.detail).toContain(first.body.task_id)
    })

    it('refuses a schedule key reused with another cron (422), replays the same schedule (200)', async () => {
      const k = `nightly-${server}`
      const body = {
        name: 'send-email',
        payload: { to: 'a@b.co', subject: 'hi' },
        schedule: '0 3 * * *',
        idempotency_key: k,
      }
      expect((await submit(body)).status).toBe(201)
      expect((await submit(body)).status).toBe(200)
      const changed = await submit({ ...body, schedule: '0 4 * * *' })
      expect(changed.status).toBe(422)
      expect(changed.body.code).toBe('IDEMPOTENCY_CONFLICT')
    })
  })
})

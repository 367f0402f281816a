/**
 * Text PostgreSQL cannot keep (a NUL character, a lone UTF-16 surrogate) is refused where it comes
 * in: 400 over REST with the field named in `errors[]` and no database message in `detail`, on all
 * three adapters; INVALID_INPUT from the library, before the store sees it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TaskloomError } from '../../src/errors.js'
import { hasPostgres, hasRedis } from '../helpers/services.js'
import { ALL_SCOPES, call, SERVERS, type Stack, sendEmail, startStack } from './harness.js'

const up = (await hasRedis()) && (await hasPostgres())

const NUL = '\u0000'
const LONE = '\ud800'
/** No answer may carry PostgreSQL's (or the driver's) own words. */
const DB_WORDS =
  /invalid byte sequence|unsupported unicode|escape sequence|syntax|postgres|jsonb|22021|22P05/i

describe.skipIf(!up)('text PostgreSQL cannot store', () => {
  let stack: Stack
  let key: string
  let admin: string
  beforeAll(async () => {
    stack = await startStack({ worker: false })
    key = await stack.key('text', [...ALL_SCOPES], { rateLimit: 100_000 })
    admin = await stack.key('text', ['admin'], { rateLimit: 100_000 })
  }, 60_000)
  afterAll(() => stack?.close())

  const email = { to: 'a@b.co', subject: 'hi' }
  /** [what, method, path, body, the field errors[] must name] */
  const cases = (bad: string): [string, string, string, unknown, string][] => [
    ['a task name', 'POST', '/tasks', { name: `send${bad}`, payload: email }, 'name'],
    [
      'a payload string',
      'POST',
      '/tasks',
      { name: 'send-email', payload: { ...email, subject: bad } },
      'payload.subject',
    ],
    [
      'a payload field name',
      'POST',
      '/tasks',
      { name: 'send-email', payload: { ...email, [`x${bad}`]: 1 } },
      `payload.${JSON.stringify(`x${bad}`)}`,
    ],
    [
      'a nested payload',
      'POST',
      '/tasks',
      { name: 'send-email', payload: { ...email, deep: [[{ a: bad }]] } },
      'payload.deep.0.0.a',
    ],
    [
      'an idempotency key',
      'POST',
      '/tasks',
      { name: 'send-email', payload: email, idempotency_key: `k${bad}` },
      'idempotency_key',
    ],
    [
      'a scheduled payload',
      'POST',
      '/tasks',
      { name: 'send-email', payload: { ...email, subject: bad }, schedule: '0 * * * *' },
      'payload.subject',
    ],
    [
      'a schedule',
      'POST',
      '/tasks',
      { name: 'send-email', payload: email, schedule: `0 * * * *${bad}` },
      'schedule',
    ],
    [
      'a schedule payload',
      'POST',
      '/schedules',
      { name: 'send-email', cron: '0 * * * *', payload: { ...email, subject: bad } },
      'payload.subject',
    ],
    [
      'a schedule timezone',
      'POST',
      '/schedules',
      { name: 'send-email', cron: '0 * * * *', payload: email, timezone: `UTC${bad}` },
      'timezone',
    ],
    [
      'a schedule id',
      'POST',
      '/schedules',
      { id: `s${bad}`, name: 'send-email', cron: '0 * * * *', payload: email },
      'id',
    ],
    ['a key name', 'POST', '/admin/keys', { name: bad, scopes: ['task:read'] }, 'name'],
  ]

  describe.each(SERVERS)('through %s', (server) => {
    for (const [label, bad] of [
      ['NUL', NUL],
      ['a lone surrogate', LONE],
    ] as const) {
      it(`answers 400 naming the field for ${label} in a body`, async () => {
        for (const [what, method, path, json, field] of cases(bad)) {
          const res = await call(stack.url[server], method, path, {
            key: path.startsWith('/admin') ? admin : key,
            json,
          })
          expect(res.status, `${what}: ${JSON.stringify(res.body)}`).toBe(400)
          expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/)
          expect(
            res.body.errors.map((e: { path: string }) => e.path),
            what,
          ).toContain(field)
          expect(res.body.detail, what).not.toMatch(DB_WORDS)
        }
      })
    }

    it('answers 400 for a payload nested deeper than 100 levels, which could not be stored', async () => {
      let deep: unknown = 1
      for (let i = 0; i < 150; i++) deep = [deep]
      const res = await call(stack.url[server], 'POST', '/tasks', {
        key,
        json: { name: 'send-email', payload: { ...email, deep } },
      })
      expect(res.status).toBe(400)
      expect(res.body.errors[0].message).toBe('nested deeper than 100 levels')
      expect(res.body.errors[0].path).toMatch(/^payload\.deep(\.0)+$/)
    })

    it('answers 400 INVALID_QUERY for a NUL in a query, without the database message', async () => {
      for (const q of ['name=%00', 'name=a%00b', 'status=%00']) {
        const res = await call(stack.url[server], 'GET', `/tasks?${q}`, { key })
        expect(res.status, q).toBe(400)
        expect(res.body.code).toBe('INVALID_QUERY')
        expect(res.body.errors[0].path).toBe(q.split('=')[0])
        expect(res.body.detail).not.toMatch(DB_WORDS)
      }
    })
  })

  it('stores nothing for a refused request (no key named U+FFFD)', async () => {
    const res = await call(stack.url.node, 'POST', '/admin/keys', {
      key: admin,
      json: { name: LONE, scopes: ['task:read'] },
    })
    expect(res.status).toBe(400)
    const keys = await (await stack.api.keys()).list('text')
    expect(keys.map((k) => k.name)).not.toContain('\ufffd')
  })

  it('refuses the same text in the library, before the store', async () => {
    const refused = async (work: Promise<unknown>) => {
      const err = await work.then(
        () => null,
        (e: unknown) => e,
      )
      expect(err).toBeInstanceOf(TaskloomError)
      return err as TaskloomError
    }
    const q = stack.queue
    let err = await refused(q.submit(sendEmail, { to: 'a@b.co', subject: `x${NUL}` }))
    expect(err.code).toBe('INVALID_INPUT')
    expect(err.issues).toEqual([{ path: 'input.subject', message: expect.stringMatching(/NUL/) }])
    err = await refused(q.submitMany([{ task: sendEmail, input: { to: 'a@b.co', subject: LONE } }]))
    expect(err.issues[0]?.path).toBe('[0].input.subject')
    err = await refused(q.submit(sendEmail, email, { idempotencyKey: `k${NUL}` }))
    expect(err.issues[0]?.path).toBe('options.idempotencyKey')
    err = await refused(
      q.schedules.upsert({
        id: 'nightly',
        cron: '0 * * * *',
        task: sendEmail,
        input: { ...email, subject: NUL },
      }),
    )
    expect(err.code).toBe('INVALID_INPUT')
    expect(err.issues[0]?.path).toBe('input.subject')
    err = await refused(q.submit(sendEmail, { ...email, subject: LONE }, { schedule: '0 * * * *' }))
    expect(err.issues[0]?.path).toBe('input.subject')
    err = await refused(q.list({ name: `a${NUL}` }))
    expect(err.code).toBe('INVALID_OPTIONS')
    err = await refused(
      (await stack.api.keys()).create({ tenantId: 'text', scopes: ['task:read'], name: LONE }),
    )
    expect(err.issues[0]?.path).toBe('name')
    expect(await q.definitions.resolve(`send${NUL}`)).toBeNull()
  })
})

/** Schedules made over REST fire out of the box: the mounted API runs a scheduler by default. */
import pg from 'pg'
import { afterEach, describe, expect, it } from 'vitest'
import { TaskloomError } from '../../src/errors.js'
import { createApi } from '../../src/http/index.js'
import { createQueue } from '../../src/index.js'
import { silent, sleep, until } from '../helpers/backends.js'
import { DATABASE_URL, hasPostgres, hasRedis, REDIS_URL, uniqueName } from '../helpers/services.js'
import { ALL_SCOPES, call, type Stack, startStack } from './harness.js'

const up = (await hasRedis()) && (await hasPostgres())

describe.skipIf(!up)('the scheduler of the mounted API', () => {
  let stack: Stack | undefined
  afterEach(async () => {
    await stack?.close()
    stack = undefined
  })

  /** Creates an every-second schedule over REST and answers the tasks it made within `ms`. */
  async function firedWithin(s: Stack, ms: number) {
    const key = await s.key('cron', [...ALL_SCOPES])
    const url = s.url.fastify
    const made = await call(url, 'POST', '/schedules', {
      key,
      json: {
        id: 'every-second',
        name: 'send-email',
        cron: '* * * * * *',
        payload: { to: 'c@c.co', subject: 'tick' },
      },
    })
    expect(made.status).toBe(201)
    const list = async () => (await call(url, 'GET', '/tasks?name=send-email', { key })).body.tasks
    if (ms === 0) return until(async () => ((await list()).length >= 2 ? list() : null), 15_000)
    await sleep(ms)
    return list()
  }

  it('fires a schedule made over REST, with no scheduler of the host', async () => {
    stack = await startStack()
    const tasks = await firedWithin(stack, 0)
    expect(tasks.length).toBeGreaterThanOrEqual(2)
    expect(tasks[0]).toMatchObject({ name: 'send-email' })
    expect(tasks[0].idempotency_key).toMatch(/^schedule:cron:every-second:\d+$/)
    await until(async () => (await stack!.queue.get(tasks[0].task_id))?.status === 'completed')
  }, 30_000)

  it('leaves firing to another process with scheduler: false', async () => {
    stack = await startStack({ scheduler: false })
    expect(await firedWithin(stack, 2500)).toEqual([])
  }, 30_000)

  it('refuses bad scheduler options at createApi, and scheduler: true without a store when it opens', async () => {
    const queue = createQueue({ name: uniqueName('nostore'), redis: REDIS_URL, logger: silent })
    const schema = uniqueName('nostore').replaceAll('-', '_')
    try {
      expect(() => createApi({ queue, scheduler: { pollMs: 1 }, logger: silent })).toThrow(TaskloomError)
      // Keys and audit in PostgreSQL, but the queue (Redis-only) has no store for schedules.
      const api = createApi({
        queue,
        scheduler: true,
        logger: silent,
        postgres: DATABASE_URL,
        postgresSchema: schema,
        migrate: true,
      })
      await expect(api.ready()).rejects.toMatchObject({
        code: 'INVALID_OPTIONS',
        message: expect.stringContaining('`scheduler` needs a queue with a store'),
      })
      await api.close()
    } finally {
      await queue.close()
      const client = new pg.Client(DATABASE_URL)
      await client.connect()
      await client.query(`drop schema if exists "${schema}" cascade`)
      await client.end()
    }
  })
})

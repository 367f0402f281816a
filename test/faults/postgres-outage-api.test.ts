/**
 * An API and its durable queue against a PostgreSQL that is down (issue 16 items 6 and 7): started
 * while the server is stopped, the queue retries its open with backoff and the API recovers by itself
 * once the server is back (/ready answers 503 with the failing check meanwhile, never a sticky 500,
 * and /health stays 200); stopped again while the API serves, every request answers 503, before and
 * after the API-key cache expires; a queue whose open deadline passed makes /health fail.
 */
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { type Api, type ApiResponse, createApi } from '../../src/http/index.js'
import { createQueue, defineTask, type Queue, TaskloomError } from '../../src/index.js'
import type { Logger } from '../../src/logger.js'
import { until } from '../helpers/backends.js'
import { canRunPrivateServers, usePrivateServers } from '../helpers/private-servers.js'
import { uniqueName } from '../helpers/services.js'

const canRun = await canRunPrivateServers()
const job = defineTask({ name: 'job', input: z.object({ n: z.number() }) })

function capture(): { lines: { level: string; msg: string }[]; logger: Logger } {
  const lines: { level: string; msg: string }[] = []
  const at =
    (level: string) =>
    (_fields: object, msg = '') =>
      void lines.push({ level, msg })
  return { lines, logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') } }
}

describe.skipIf(!canRun)('the API while PostgreSQL is down', () => {
  const servers = usePrivateServers()
  const schema = uniqueName('pgdown').replaceAll('-', '_')
  const open = (name: string, logger: Logger, extra: { openTimeoutMs?: number } = {}): Queue =>
    createQueue({
      name,
      redis: servers.redis().url,
      postgres: servers.postgres().url,
      postgresSchema: schema,
      postgresPool: { max: 4, connectionTimeoutMs: 1000 },
      migrate: true,
      brokerTimeoutMs: 1000,
      logger,
      ...extra,
    })
  const call = (api: Api, method: string, url: string, key?: string, body?: unknown): Promise<ApiResponse> =>
    api.handle({
      method,
      url,
      headers: { ...(key ? { 'x-api-key': key } : {}), 'content-type': 'application/json' },
      body: body === undefined ? undefined : new TextEncoder().encode(JSON.stringify(body)),
    })

  it('recovers from a start without PostgreSQL and answers 503 throughout an outage', {
    timeout: 90_000,
  }, async () => {
    const name = uniqueName('pgdown')
    const { logger } = capture()
    // The schema and a key, made while PostgreSQL is up.
    const setupQueue = open(name, logger)
    const setup = createApi({ queue: setupQueue, tasks: [job], logger })
    const { key } = await (await setup.keys()).create({
      tenantId: 'acme',
      scopes: ['task:create', 'task:read', 'task:list'],
    })
    await setup.close()
    await setupQueue.close()

    await servers.postgres().down()
    const log = capture()
    const queue = open(name, log.logger)
    const api = createApi({ queue, tasks: [job], logger: log.logger, keyCacheMs: 300 })
    try {
      // Item 6: not ready, with the failing check, and alive; requests answer 503, never 500.
      await until(async () => (await call(api, 'GET', '/ready')).status === 503, 10_000, '/ready to answer')
      const ready = await call(api, 'GET', '/ready')
      expect(ready.status).toBe(503)
      const body = JSON.parse(ready.body)
      expect(body).toMatchObject({ status: 'not_ready', checks: { postgres: 'error', redis: 'ok' } })
      expect(body.errors.postgres).toMatch(/ECONNREFUSED|connect/)
      expect((await call(api, 'GET', '/health')).status).toBe(200)
      const post = await call(api, 'POST', '/tasks', key, { name: 'job', payload: { n: 1 } })
      expect(post.status).toBe(503)
      expect(post.headers['retry-after']).toMatch(/^\d+$/)
      const err = await queue.ready().catch((e: unknown) => e)
      expect(err).toBeInstanceOf(TaskloomError)
      expect((err as TaskloomError).code).toBe('STORE_UNAVAILABLE')
      expect((err as TaskloomError).retryable).toBe(true)

      await servers.postgres().start()
      await until(
        async () => (await call(api, 'GET', '/ready')).status === 200,
        20_000,
        'the API to become ready',
      )
      await queue.ready()
      const created = await call(api, 'POST', '/tasks', key, { name: 'job', payload: { n: 2 } })
      expect(created.status).toBe(201)
      // Logged once when the open failed and once when it succeeded, not per attempt.
      expect(
        log.lines.filter((l) => l.msg.startsWith('opening the queue failed')).map((l) => l.level),
      ).toEqual(['warn'])
      expect(log.lines.filter((l) => l.msg === 'queue opened after retrying').map((l) => l.level)).toEqual([
        'info',
      ])

      // Item 7: PostgreSQL goes away while the API serves. The key is cached for 300 ms; before and
      // after that, every request is a 503 (the submit needs the store, and then so does the key).
      const mark = log.lines.length
      await servers.postgres().down()
      const statuses: number[] = []
      const until2 = Date.now() + 2500
      while (Date.now() < until2) {
        statuses.push((await call(api, 'POST', '/tasks', key, { name: 'job', payload: { n: 3 } })).status)
        statuses.push((await call(api, 'GET', '/tasks?limit=1', key)).status)
      }
      expect(statuses.length).toBeGreaterThan(2)
      expect(new Set(statuses)).toEqual(new Set([503]))
      const readyDown = await call(api, 'GET', '/ready')
      expect(readyDown.status).toBe(503)
      expect(JSON.parse(readyDown.body).checks.postgres).toBe('error')
      expect(log.lines.filter((l) => l.level === 'error')).toEqual([])
      expect(
        log.lines
          .slice(mark)
          .filter((l) => l.msg.includes('PostgreSQL is unavailable'))
          .map((l) => l.level),
      ).toEqual(['warn'])
      await servers.postgres().start()
      await until(
        async () =>
          (await call(api, 'POST', '/tasks', key, { name: 'job', payload: { n: 4 } })).status === 201,
        20_000,
        'submits to succeed again',
      )
    } finally {
      await api.close()
      await queue.close()
    }
  })

  it('fails /health once the open deadline passed: the process cannot recover', {
    timeout: 30_000,
  }, async () => {
    await servers.postgres().down()
    const { logger, lines } = capture()
    const queue = open(uniqueName('pgdown'), logger, { openTimeoutMs: 1500 })
    const api = createApi({ queue, tasks: [job], logger })
    try {
      expect((await call(api, 'GET', '/health')).status).toBe(200) // still trying
      const err = await until(
        async () => {
          const e = await queue.ready().catch((e: unknown) => e)
          return e instanceof TaskloomError && !e.retryable ? e : null
        },
        10_000,
        'the open to give up',
      )
      expect(err.code).toBe('STORE_UNAVAILABLE')
      expect(err.message).toMatch(/could not open within 1500 ms/)
      const health = await call(api, 'GET', '/health')
      expect(health.status).toBe(503)
      expect(JSON.parse(health.body)).toMatchObject({ status: 'unhealthy', reason: err.message })
      expect((await call(api, 'GET', '/ready')).status).toBe(503)
      expect(lines.filter((l) => l.level === 'error').map((l) => l.msg)).toEqual([
        'opening the queue failed for good; it cannot serve',
      ])
    } finally {
      await api.close()
      await queue.close()
      await servers.postgres().start()
    }
  })
})

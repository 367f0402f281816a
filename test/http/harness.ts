/**
 * An API stack for tests: a durable queue on the shared Redis and PostgreSQL (own schema), the API
 * core, and real Express, Fastify and node:http servers on loopback ports.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import express from 'express'
import Fastify, { type FastifyInstance } from 'fastify'
import { z } from 'zod'
import { expressRouter } from '../../src/http/adapters/express.js'
import { fastifyFrameworkErrors, fastifyPlugin } from '../../src/http/adapters/fastify.js'
import { nodeHandler } from '../../src/http/adapters/node.js'
import { type Api, type ApiOptions, createApi, type Scope } from '../../src/http/index.js'
import { createQueue, createWorker, defineTask, type Queue, type Worker } from '../../src/index.js'
import { silent } from '../helpers/backends.js'
import { DATABASE_URL, dropSchema, REDIS_URL, uniqueName } from '../helpers/services.js'

export const sendEmail = defineTask({
  name: 'send-email',
  input: z.object({ to: z.email(), subject: z.string().min(1) }),
})
/** Runs until its input's `ms` elapse (to hold a task in `processing`). */
export const sleepTask = defineTask({ name: 'sleep', input: z.object({ ms: z.number().int().min(0) }) })
/** Always fails without retries (to fill the dead-letter queue). */
export const doomed = defineTask({
  name: 'doomed',
  input: z.object({ why: z.string() }),
  defaults: { maxRetries: 0 },
})

export const SERVERS = ['express', 'fastify', 'node'] as const
export type ServerKind = (typeof SERVERS)[number]
export const PREFIX = '/api/v1'

export interface Stack {
  queue: Queue
  api: Api
  worker: Worker | undefined
  schema: string
  /** Base URLs (with the prefix) of each server. */
  url: Record<ServerKind, string>
  /** Creates a key for a tenant and answers its secret. */
  key(
    tenantId: string,
    scopes: Scope[],
    extra?: { rateLimit?: number; monthlyQuota?: number; expiresAt?: Date },
  ): Promise<string>
  /** Creates an operator key (no tenant) and answers its secret. */
  operatorKey(): Promise<string>
  close(): Promise<void>
}

export interface StackOptions extends Partial<Omit<ApiOptions, 'queue'>> {
  /** Start a worker for the test tasks. Default true. */
  worker?: boolean
  /** Redis-backed queue (rate limits in Redis). Default true. */
  redis?: boolean
}

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const schema = uniqueName('http').replaceAll('-', '_')
  const queue = createQueue({
    name: uniqueName('http'),
    ...(options.redis === false ? {} : { redis: REDIS_URL }),
    postgres: DATABASE_URL,
    postgresSchema: schema,
    migrate: true,
    logger: silent,
  })
  await queue.ready()
  const { worker: withWorker = true, redis: _redis, ...apiOptions } = options
  const api = createApi({ queue, tasks: [sendEmail, sleepTask, doomed], logger: silent, ...apiOptions })
  let worker: Worker | undefined
  if (withWorker) {
    // `doomed` fails on purpose, many times across the suites: no circuit breaker, so each one
    // reaches the dead-letter queue instead of being deferred once its breaker opens.
    worker = createWorker({ queue, concurrency: 10, logger: silent, breakers: false })
    worker.handle(sendEmail, async (input) => ({ messageId: `msg-${input.to}` }))
    worker.handle(sleepTask, async (input, ctx) => {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, input.ms)
        ctx.signal.addEventListener('abort', () => {
          clearTimeout(t)
          resolve()
        })
      })
      return 'slept'
    })
    worker.handle(doomed, async (input) => {
      throw new Error(`doomed: ${input.why}`)
    })
    await worker.start()
  }

  const app = express()
  app.use(PREFIX, expressRouter(api))
  const expressServer = await listen(createServer(app))

  const fastify: FastifyInstance = Fastify({ frameworkErrors: fastifyFrameworkErrors(api) })
  await fastify.register(fastifyPlugin, { api, prefix: PREFIX })
  await fastify.listen({ port: 0, host: '127.0.0.1' })

  const nodeServer = await listen(createServer(nodeHandler(api, { prefix: PREFIX })))

  const base = (port: number) => `http://127.0.0.1:${port}${PREFIX}`
  const keys = await api.keys()
  return {
    queue,
    api,
    worker,
    schema,
    url: {
      express: base((expressServer.address() as AddressInfo).port),
      fastify: base((fastify.server.address() as AddressInfo).port),
      node: base((nodeServer.address() as AddressInfo).port),
    },
    async key(tenantId, scopes, extra = {}) {
      return (await keys.create({ tenantId, scopes, ...extra })).key
    },
    async operatorKey() {
      return (await keys.create({ scopes: ['operator'] })).key
    },
    async close() {
      await new Promise((r) => expressServer.close(r))
      await new Promise((r) => nodeServer.close(r))
      await fastify.close()
      await worker?.close({ graceMs: 0 })
      await api.close()
      await queue.close()
      await dropSchema(schema)
    },
  }
}

function listen(server: Server): Promise<Server> {
  server.keepAliveTimeout = 1000
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)))
}

export interface Answer<T = any> {
  status: number
  headers: Headers
  body: T
}

/** A request with a real client; JSON bodies are sent as application/json. */
export async function call<T = any>(
  base: string,
  method: string,
  path: string,
  options: {
    key?: string
    json?: unknown
    body?: string | Uint8Array
    headers?: Record<string, string>
  } = {},
): Promise<Answer<T>> {
  const headers: Record<string, string> = { ...options.headers }
  if (options.key !== undefined) headers['x-api-key'] = options.key
  let body: string | Uint8Array | undefined = options.body
  if (options.json !== undefined) {
    body = JSON.stringify(options.json)
    headers['content-type'] ??= 'application/json'
  }
  const res = await fetch(`${base}${path}`, { method, headers, body })
  const text = await res.text()
  const type = res.headers.get('content-type') ?? ''
  return {
    status: res.status,
    headers: res.headers,
    body: type.includes('json') && text ? JSON.parse(text) : text,
  }
}

export const ALL_SCOPES: Scope[] = ['task:create', 'task:read', 'task:cancel', 'task:list']

/** A node:http answer read whole: its status, content type and body text. */
export function readAnswer(res: IncomingMessage): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    res.on('data', (c: Buffer) => chunks.push(c))
    res.on('end', () =>
      resolve({
        status: res.statusCode ?? 0,
        type: String(res.headers['content-type'] ?? ''),
        body: Buffer.concat(chunks).toString('utf8'),
      }),
    )
    res.on('error', reject)
  })
}

/**
 * The SERVER span's `http.route` carries the prefix the API is mounted at, through each adapter
 * (Express `app.use(prefix, …)`, Fastify `register(…, { prefix })`, `nodeHandler(…, { prefix })`).
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { trace } from '@opentelemetry/api'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import express from 'express'
import Fastify, { type FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { expressRouter } from '../../src/http/adapters/express.js'
import { fastifyPlugin } from '../../src/http/adapters/fastify.js'
import { nodeHandler } from '../../src/http/adapters/node.js'
import { type Api, createApi } from '../../src/http/index.js'
import { createQueue, type Queue } from '../../src/index.js'
import { silent } from '../helpers/backends.js'
import { uniqueName } from '../helpers/services.js'
import { sendEmail } from './harness.js'

describe('http.route with the mount prefix', () => {
  const exporter = new InMemorySpanExporter()
  let queue: Queue
  let api: Api
  const servers: Server[] = []
  let fastify: FastifyInstance
  const urls: Record<string, string> = {}

  const listen = async (server: Server) => {
    servers.push(server)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  }

  beforeAll(async () => {
    trace.setGlobalTracerProvider(
      new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
    )
    queue = createQueue({ name: uniqueName('mount'), logger: silent })
    api = createApi({ queue, tasks: [sendEmail], logger: silent })
    const app = express()
    app.use('/api/express', expressRouter(api))
    urls.express = `${await listen(createServer(app))}/api/express`
    urls.node = `${await listen(createServer(nodeHandler(api, { prefix: '/api/node' })))}/api/node`
    fastify = Fastify()
    await fastify.register(fastifyPlugin, { api, prefix: '/api/fastify' })
    await fastify.listen({ port: 0, host: '127.0.0.1' })
    urls.fastify = `http://127.0.0.1:${(fastify.server.address() as AddressInfo).port}/api/fastify`
  }, 60_000)

  afterAll(async () => {
    for (const server of servers) await new Promise((resolve) => server.close(resolve))
    await fastify?.close()
    await api?.close()
    await queue?.close()
    trace.disable()
  })

  it.each(['express', 'node', 'fastify'])('%s', async (adapter) => {
    exporter.reset()
    const res = await fetch(`${urls[adapter]}/tasks/0193a4a2-0000-7000-8000-000000000000`)
    expect(res.status).toBe(401) // no key: the route matched, the request went no further
    const span = exporter.getFinishedSpans().find((s) => s.attributes['http.route'] !== undefined)
    expect(span?.attributes['http.route']).toBe(`/api/${adapter}/tasks/:id`)
    expect(span?.name).toBe(`GET /api/${adapter}/tasks/:id`)
  })
})

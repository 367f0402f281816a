/** The Express router also works behind an app-wide `express.json()` (it uses what the parser left). */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import express from 'express'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { expressRouter } from '../../src/http/adapters/express.js'
import { hasPostgres, hasRedis } from '../helpers/services.js'
import { call, type Stack, startStack } from './harness.js'

const up = (await hasRedis()) && (await hasPostgres())

describe.skipIf(!up)('expressRouter behind express.json()', () => {
  let stack: Stack
  let server: Server
  let url: string
  let key: string
  beforeAll(async () => {
    stack = await startStack({ worker: false })
    key = await stack.key('parsed', ['task:create', 'task:read'])
    const app = express()
    app.use(express.json())
    app.use('/v1', expressRouter(stack.api))
    server = createServer(app)
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`
  }, 60_000)
  afterAll(async () => {
    await new Promise((r) => server?.close(r))
    await stack?.close()
  })

  it('submits with the parsed body, and still refuses other content types and bad fields', async () => {
    const created = await call(url, 'POST', '/tasks', {
      key,
      json: { name: 'send-email', payload: { to: 'p@p.co', subject: 's' } },
    })
    expect(created.status).toBe(201)
    expect((await call(url, 'GET', `/tasks/${created.body.task_id}`, { key })).body.name).toBe('send-email')
    const text = await call(url, 'POST', '/tasks', {
      key,
      body: 'x',
      headers: { 'content-type': 'text/plain' },
    })
    expect(text.status).toBe(415)
    const bad = await call(url, 'POST', '/tasks', { key, json: { name: 'send-email', payload: { to: 1 } } })
    expect(bad.status).toBe(400)
    expect(bad.body.errors.map((e: { path: string }) => e.path).sort()).toEqual([
      'payload.subject',
      'payload.to',
    ])
  })
})

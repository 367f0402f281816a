/**
 * The API's SERVER span, and the embedded mode (in-process broker, in-memory PGlite, in-process
 * token bucket), through the core without a server.
 */
import { propagation, SpanKind, trace } from '@opentelemetry/api'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Api, createApi } from '../../src/http/index.js'
import { createQueue, type Queue } from '../../src/index.js'
import { silent } from '../helpers/backends.js'
import { uniqueName } from '../helpers/services.js'
import { RecordingMetrics } from './fakes.js'
import { sendEmail } from './harness.js'

describe('the API core in embedded mode', () => {
  const exporter = new InMemorySpanExporter()
  const metrics = new RecordingMetrics()
  let queue: Queue
  let api: Api
  let key: string
  beforeAll(async () => {
    trace.setGlobalTracerProvider(
      new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
    )
    propagation.setGlobalPropagator(new W3CTraceContextPropagator())
    queue = createQueue({ name: uniqueName('embedded'), logger: silent })
    api = createApi({ queue, tasks: [sendEmail], metrics, logger: silent })
    key = (
      await (
        await api.keys()
      ).create({ tenantId: 'solo', scopes: ['task:create', 'task:read'], rateLimit: 3 })
    ).key
  }, 60_000)
  afterAll(async () => {
    await api?.close()
    await queue?.close()
    trace.disable()
    propagation.disable()
  })

  it('makes a SERVER span per request named after the route template, continuing the caller’s trace', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736'
    const created = await api.handle({
      method: 'POST',
      url: '/tasks',
      headers: { 'x-api-key': key, 'content-type': 'application/json' },
      body: Buffer.from(JSON.stringify({ name: 'send-email', payload: { to: 'a@b.co', subject: 's' } })),
    })
    expect(created.status).toBe(201)
    const id = JSON.parse(created.body).task_id
    const got = await api.handle({
      method: 'GET',
      url: `/tasks/${id}`,
      headers: { 'x-api-key': key, traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
    })
    expect(got.status).toBe(200)
    const span = exporter.getFinishedSpans().find((s) => s.name === 'GET /tasks/:id')
    expect(span).toBeDefined()
    expect(span!.kind).toBe(SpanKind.SERVER)
    expect(span!.spanContext().traceId).toBe(traceId)
    expect(span!.attributes).toMatchObject({
      'http.request.method': 'GET',
      'http.route': '/tasks/:id',
      'url.path': `/tasks/${id}`,
      'http.response.status_code': 200,
      'taskloom.tenant_id': 'solo',
    })
    expect(exporter.getFinishedSpans().map((s) => s.name)).toContain('POST /tasks')
    expect(metrics.requests.map((r) => `${r.method} ${r.route} ${r.status}`)).toEqual([
      'POST /tasks 201',
      'GET /tasks/:id 200',
    ])
  })

  it('records the mount prefix in http.route and the span name', async () => {
    exporter.reset()
    // Without a key (401), so the key's rate limit is left to the next test.
    const res = await api.handle({ method: 'GET', url: '/quota', headers: {}, mountPath: '/api/v1' })
    expect(res.status).toBe(401)
    const span = exporter.getFinishedSpans().find((s) => s.name === 'GET /api/v1/quota')
    expect(span?.attributes['http.route']).toBe('/api/v1/quota')
  })

  it('rate-limits in process when the queue has no Redis', async () => {
    const third = await api.handle({ method: 'GET', url: '/quota', headers: { 'x-api-key': key } })
    expect(third.status).toBe(200)
    expect(third.headers['ratelimit-remaining']).toBe('0')
    const fourth = await api.handle({ method: 'GET', url: '/quota', headers: { 'x-api-key': key } })
    expect(fourth.status).toBe(429)
    expect(Number(fourth.headers['retry-after'])).toBeGreaterThanOrEqual(19)
    expect(metrics.limited).toEqual(['solo'])
  })

  it('answers /ready with Redis not configured, and rejects bad options', async () => {
    const ready = await api.handle({ method: 'GET', url: '/ready', headers: {} })
    expect(JSON.parse(ready.body)).toEqual({
      status: 'ready',
      checks: { redis: 'not_configured', postgres: 'ok' },
    })
    expect(() => createApi({ queue, rateLimit: 0 })).toThrow(/rateLimit: expected an integer/)
    expect(() => createApi({} as never)).toThrow(/needs `queue`/)
  })
})

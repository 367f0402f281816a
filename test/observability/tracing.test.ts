import { spawn } from 'node:child_process'
import { SpanKind, SpanStatusCode, TraceFlags, type Tracer, trace } from '@opentelemetry/api'
import type { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base'
import { beforeEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { defineTask, NonRetryableError } from '../../src/index.js'
import { decodeTraceContext, encodeTraceContext } from '../../src/observability/tracing.js'
import { waitForTask } from '../../src/testing.js'
import { backends, trackWorker, until } from '../helpers/backends.js'
import { registerTracing, type SpanSummary, spanSummary } from '../helpers/otel.js'
import { REDIS_URL } from '../helpers/services.js'

const { exporter: registered } = registerTracing()
const exporter = registered as InMemorySpanExporter
const tracer: Tracer = trace.getTracer('test')
const job = defineTask({ name: 'traced', input: z.object({ n: z.number() }) })

function spans(): SpanSummary[] {
  return exporter.getFinishedSpans().map(spanSummary)
}

function one(list: SpanSummary[], name: string, messageId?: string): SpanSummary {
  const found = list.filter(
    (s) => s.name === name && (messageId === undefined || s.attributes['messaging.message.id'] === messageId),
  )
  expect(found, `exactly one span ${name} ${messageId ?? ''}`).toHaveLength(1)
  return found[0]!
}

/** Submits inside an active "request" span, as the HTTP adapter does; answers its span id. */
async function submitInRequest<T>(submit: () => Promise<T>): Promise<{ result: T; requestSpanId: string }> {
  return tracer.startActiveSpan('request', async (span) => {
    try {
      return { result: await submit(), requestSpanId: span.spanContext().spanId }
    } finally {
      span.end()
    }
  })
}

describe('the trace context in a task', () => {
  it('round-trips a traceparent and tracestate', () => {
    const tc = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\nvendor=abc,other=x'
    const sc = decodeTraceContext(tc)!
    expect(sc).toMatchObject({
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: 'b7ad6b7169203331',
      traceFlags: TraceFlags.SAMPLED,
      isRemote: true,
    })
    expect(sc.traceState?.get('vendor')).toBe('abc')
    expect(encodeTraceContext(sc)).toBe(tc)
  })

  it('ignores absent, malformed and all-zero contexts instead of failing the task', () => {
    for (const bad of [
      undefined,
      '',
      'garbage',
      '00-00000000000000000000000000000000-b7ad6b7169203331-01',
      '00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01',
      'ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra',
      '00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01',
    ]) {
      expect(decodeTraceContext(bad), String(bad)).toBeUndefined()
    }
    // A bad tracestate is dropped; the parent still joins.
    expect(decodeTraceContext('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00\n=,,=')?.spanId).toBe(
      'b7ad6b7169203331',
    )
  })
})

describe.each(backends)('spans of a task ($label)', (backend) => {
  beforeEach(() => exporter.reset())

  it.skipIf(!backend.available)(
    'submit (producer), queue wait, execute (consumer) and result processing join the submitting trace',
    async () => {
      const queue = backend.queue()
      const worker = trackWorker({ queue, concurrency: 2 }).handle(job, async (input) => {
        await tracer.startActiveSpan('handler-work', async (span) => span.end())
        return input.n
      })
      const { result: task, requestSpanId } = await submitInRequest(() =>
        queue.submit(job, { n: 1 }, { tenantId: 'acme', priority: 'high' }),
      )
      await worker.start()
      await waitForTask(queue, task.id)
      await until(() => spans().some((s) => s.name === `process ${queue.name}`), 5000, 'the process span')
      await worker.close()
      const all = spans()
      const request = one(all, 'request')
      const send = one(all, `send ${queue.name}`)
      const wait = one(all, `wait ${queue.name}`)
      const consumer = one(all, `process ${queue.name}`)
      const settle = one(all, `settle ${queue.name}`)
      const handler = one(all, 'handler-work')

      expect(request.spanId).toBe(requestSpanId)
      for (const s of [send, wait, consumer, settle, handler]) expect(s.traceId).toBe(request.traceId)
      expect(send).toMatchObject({ kind: SpanKind.PRODUCER, parentSpanId: request.spanId })
      expect(send.attributes).toMatchObject({
        'messaging.system': 'taskloom',
        'messaging.destination.name': queue.name,
        'messaging.operation.type': 'send',
        'messaging.operation.name': 'send',
        'messaging.client.id': expect.stringMatching(/:\d+$/),
        'messaging.message.id': task.id,
        'taskloom.task.name': 'traced',
        'taskloom.tenant_id': 'acme',
        'taskloom.task.priority': 'high',
      })
      expect(wait.parentSpanId).toBe(send.spanId)
      expect(wait.startMs).toBeCloseTo(task.createdAt.getTime(), -1)
      expect(wait.endMs).toBeLessThanOrEqual(consumer.startMs + 1)
      expect(consumer).toMatchObject({ kind: SpanKind.CONSUMER, parentSpanId: send.spanId })
      expect(consumer.links).toEqual([{ traceId: send.traceId, spanId: send.spanId }])
      expect(consumer.attributes).toMatchObject({
        'messaging.system': 'taskloom',
        'messaging.destination.name': queue.name,
        'messaging.operation.type': 'process',
        'messaging.operation.name': 'process',
        'messaging.client.id': worker.id,
        'messaging.message.id': task.id,
        'taskloom.task.attempt': 1,
        'taskloom.worker.id': worker.id,
      })
      expect(consumer.status.code).not.toBe(SpanStatusCode.ERROR)
      expect(handler.parentSpanId).toBe(consumer.spanId)
      expect(settle).toMatchObject({ kind: SpanKind.CLIENT, parentSpanId: consumer.spanId })
      expect(settle.attributes['messaging.operation.type']).toBe('settle')
      expect(settle.attributes['taskloom.settle.outcome']).toBe('completed')
      expect(settle.attributes['messaging.client.id']).toBe(worker.id)
      // The messaging conventions' span names: `{messaging.operation.name} {destination}`.
      for (const s of [send, wait, consumer, settle])
        expect(s.name).toBe(`${s.attributes['messaging.operation.name']} ${queue.name}`)
    },
  )

  it.skipIf(!backend.available)('marks the execute span of a failed attempt as an error', async () => {
    const queue = backend.queue()
    const worker = trackWorker({ queue }).handle(job, () => {
      throw new NonRetryableError('card declined')
    })
    const task = await queue.submit(job, { n: 1 })
    await worker.start()
    await waitForTask(queue, task.id)
    await until(() => spans().some((s) => s.name === `process ${queue.name}`), 5000, 'the process span')
    await worker.close()
    const consumer = one(spans(), `process ${queue.name}`)
    expect(consumer.status).toEqual({ code: SpanStatusCode.ERROR, message: 'card declined' })
    expect(consumer.events).toContain('exception')
    expect(consumer.attributes['error.type']).toBe('NonRetryableError')
    expect(one(spans(), `settle ${queue.name}`).attributes['taskloom.settle.outcome']).toBe('failed')
  })

  it.skipIf(!backend.available)(
    'a result that cannot be encoded fails the attempt: a failed span, and no success for the breaker',
    async () => {
      const queue = backend.queue()
      const worker = trackWorker({ queue, taskBreakers: true }).handle(job, (input) => {
        if (input.n === 1) throw new Error('dependency down')
        return { big: 10n } // JSON cannot encode a bigint
      })
      await worker.start()
      const down = await queue.submit(job, { n: 1 }, { maxRetries: 0 })
      expect(await waitForTask(queue, down.id)).toMatchObject({ status: 'failed' })
      await until(async () => (await queue.breaker(job.name).state()).failures === 1, 5000, 'one failure')
      const task = await queue.submit(job, { n: 2 }, { maxRetries: 0 })
      const done = await waitForTask(queue, task.id)
      expect(done.status).toBe('failed')
      expect(done.error?.message).toMatch(/BigInt/i)
      await until(() => spans().filter((s) => s.name === `process ${queue.name}`).length === 2, 5000, 'spans')
      await worker.close()
      const consumer = one(spans(), `process ${queue.name}`, task.id)
      expect(consumer.status.code).toBe(SpanStatusCode.ERROR)
      const settles = spans().filter((s) => s.name === `settle ${queue.name}`)
      expect(settles.map((s) => s.attributes['taskloom.settle.outcome'])).toEqual(['failed', 'failed'])
      // The handler's own bug says nothing about its dependency: the breaker's count stands.
      expect((await queue.breaker(job.name).state()).failures).toBe(1)
    },
  )

  it.skipIf(!backend.available)(
    'gives a batch one producer span that every task of it continues',
    async () => {
      const queue = backend.queue()
      const worker = trackWorker({ queue, concurrency: 4 }).handle(job, (input) => input.n)
      const { result: tasks } = await submitInRequest(() =>
        queue.submitMany([1, 2, 3].map((n) => ({ task: job, input: { n } }))),
      )
      await worker.start()
      for (const t of tasks) await waitForTask(queue, t.id)
      await until(
        () => spans().filter((s) => s.name === `process ${queue.name}`).length === 3,
        5000,
        'three process spans',
      )
      await worker.close()
      const send = one(spans(), `send ${queue.name}`)
      expect(send.attributes['messaging.batch.message_count']).toBe(3)
      for (const t of tasks) {
        const consumer = one(spans(), `process ${queue.name}`, t.id)
        expect(consumer.parentSpanId).toBe(send.spanId)
        expect(consumer.traceId).toBe(send.traceId)
      }
    },
  )
})

const redis = backends.find((b) => b.label === 'redis')!

describe.skipIf(!redis.available)('a worker in another process', () => {
  it('continues the submitting trace: its execute span is a child of this process’s producer span', async () => {
    exporter.reset()
    const queue = redis.queue()
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '--import',
        './scripts/register-lua.mjs',
        'test/fixtures/traced-worker.ts',
        REDIS_URL,
        queue.name,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    )
    let out = ''
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString()
    })
    const childSpans = () =>
      out
        .split('\n')
        .filter((line) => line.startsWith('SPAN '))
        .map((line) => JSON.parse(line.slice(5)) as SpanSummary)
    try {
      await until(() => out.includes('ready'), 20_000, 'the child worker to start')
      const { result: task } = await submitInRequest(() => queue.submit(job, { n: 21 }))
      const done = await waitForTask(queue, task.id, { timeoutMs: 20_000 })
      expect(done.result).toBe(42)
      await until(
        () =>
          childSpans().some((s) => s.name === `settle ${queue.name}`) &&
          childSpans().some((s) => s.name === `process ${queue.name}`),
        10_000,
        'the child to export its spans',
      )
    } finally {
      child.kill('SIGTERM')
      await new Promise((resolve) => child.once('exit', resolve))
    }
    const send = one(spans(), `send ${queue.name}`)
    const request = one(spans(), 'request')
    const theirs = childSpans()
    const consumer = one(theirs, `process ${queue.name}`)
    const handler = one(theirs, 'handler-work')
    expect(consumer.traceId).toBe(request.traceId)
    expect(consumer.parentSpanId).toBe(send.spanId)
    expect(consumer.kind).toBe(SpanKind.CONSUMER)
    expect(handler.traceId).toBe(request.traceId)
    expect(handler.parentSpanId).toBe(consumer.spanId)
    expect(one(theirs, `wait ${queue.name}`).parentSpanId).toBe(send.spanId)
  })
})

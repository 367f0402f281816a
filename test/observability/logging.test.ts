import { Writable } from 'node:stream'
import { trace } from '@opentelemetry/api'
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createQueue, defineTask, TaskloomError } from '../../src/index.js'
import { childLogger, createJsonLogger, pinoOptions } from '../../src/logger.js'
import { waitForTask } from '../../src/testing.js'
import { backends, trackWorker, until } from '../helpers/backends.js'
import { registerTracing } from '../helpers/otel.js'

const job = defineTask({ name: 'logged', input: z.object({ ok: z.boolean() }) })

/** A real pino logger writing JSON lines into memory. */
function capture(level: 'debug' | 'info' | 'warn' = 'debug') {
  const lines: Record<string, unknown>[] = []
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line))
      done()
    },
  })
  return { lines, logger: pino(pinoOptions({ service: 'billing', level }), stream) }
}

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

describe.each(backends)('structured logs through pino ($label)', (backend) => {
  it.skipIf(!backend.available)(
    'logs flow at DEBUG, lifecycle at INFO, retries at WARN and failures at ERROR, with the spec fields',
    async () => {
      const { lines, logger } = capture('debug')
      const queue = backend.queue({ logger })
      const worker = trackWorker({ queue, backoff: { baseMs: 1, maxMs: 1, jitter: 0 } })
      worker.handle(job, (input, ctx) => {
        ctx.logger.info({ step: 'charge' }, 'inside the handler')
        if (!input.ok) throw new Error('card declined')
        return 'done'
      })
      await worker.start()
      const good = await queue.submit(job, { ok: true }, { tenantId: 'acme' })
      const bad = await queue.submit(job, { ok: false }, { tenantId: 'acme', maxRetries: 1 })
      await waitForTask(queue, good.id)
      await waitForTask(queue, bad.id)
      await until(() => lines.some((l) => l.level === 'error'), 5000, 'the failure log line')
      await worker.close()

      for (const line of lines) {
        expect(line.timestamp).toMatch(ISO)
        expect(line.service).toBe('billing')
        expect(['debug', 'info', 'warn', 'error']).toContain(line.level)
        expect(typeof line.message).toBe('string')
      }
      const find = (level: string, message: RegExp, taskId: string) =>
        lines.filter((l) => l.level === level && message.test(String(l.message)) && l.task_id === taskId)

      expect(find('info', /submitted/, good.id)).toHaveLength(1)
      expect(find('info', /submitted/, good.id)[0]).toMatchObject({ tenant_id: 'acme', task_type: 'logged' })
      const started = find('debug', /started/, good.id)
      expect(started).toHaveLength(1)
      expect(started[0]).toMatchObject({ worker_id: worker.id, tenant_id: 'acme', retry_count: 0 })
      const inside = find('info', /inside the handler/, good.id)[0]
      expect(inside).toMatchObject({ worker_id: worker.id, tenant_id: 'acme', step: 'charge' })
      const completed = find('info', /completed/, good.id)
      expect(completed).toHaveLength(1)
      expect(completed[0]).toMatchObject({ worker_id: worker.id, tenant_id: 'acme', retry_count: 0 })
      expect(completed[0]!.duration_ms).toEqual(expect.any(Number))

      const retry = find('warn', /will retry/, bad.id)
      expect(retry).toHaveLength(1)
      expect(retry[0]).toMatchObject({ worker_id: worker.id, tenant_id: 'acme', retry_count: 0 })
      expect(retry[0]!.duration_ms).toEqual(expect.any(Number))
      const failed = find('error', /failed for good/, bad.id)
      expect(failed).toHaveLength(1)
      expect(failed[0]).toMatchObject({ worker_id: worker.id, retry_count: 1 })
      expect(failed[0]!.err).toMatchObject({ message: 'card declined' })
      expect(lines.some((l) => l.level === 'debug' && l.message === 'claimed tasks')).toBe(true)
    },
  )

  it.skipIf(!backend.available)('writes nothing below the logger level', async () => {
    const { lines, logger } = capture('warn')
    const queue = backend.queue({ logger })
    const worker = trackWorker({ queue }).handle(job, () => 'done')
    await worker.start()
    const t = await queue.submit(job, { ok: true })
    await waitForTask(queue, t.id)
    await worker.close()
    expect(lines.filter((l) => l.level === 'debug' || l.level === 'info')).toEqual([])
  })
})

describe('the default JSON logger', () => {
  it('writes the spec fields and honours its level, through child loggers too', () => {
    const lines: string[] = []
    const logger = createJsonLogger({ level: 'info', service: 'api', write: (l) => lines.push(l) })
    const child = childLogger(logger, { worker_id: 'w1' })
    expect(child.isLevelEnabled?.('debug')).toBe(false)
    expect(child.isLevelEnabled?.('info')).toBe(true)
    child.debug({ task_id: 't' }, 'hidden')
    child.info({ task_id: 't', duration_ms: 5, retry_count: 0 }, 'task completed')
    expect(lines).toHaveLength(1)
    expect(JSON.parse(lines[0]!)).toMatchObject({
      level: 'info',
      service: 'api',
      worker_id: 'w1',
      task_id: 't',
      duration_ms: 5,
      retry_count: 0,
      message: 'task completed',
    })
    expect(JSON.parse(lines[0]!).timestamp).toMatch(ISO)
  })
})

describe('trace ids in log lines', () => {
  const exporter = new InMemorySpanExporter()
  registerTracing(exporter)
  const tracer = trace.getTracer('logging-test')

  it('the default logger adds trace_id and span_id under an active span, and nothing outside one', () => {
    const lines: Record<string, unknown>[] = []
    const logger = createJsonLogger({ level: 'info', write: (l) => lines.push(JSON.parse(l)) })
    logger.info({}, 'outside')
    const ids = tracer.startActiveSpan('work', (span) => {
      logger.info({}, 'inside')
      span.end()
      return span.spanContext()
    })
    expect(lines[0]).not.toHaveProperty('trace_id')
    expect(lines[1]).toMatchObject({ trace_id: ids.traceId, span_id: ids.spanId, trace_flags: '01' })
  })

  it('pinoOptions adds them through a mixin', () => {
    const { lines, logger } = capture('info')
    tracer.startActiveSpan('work', (span) => {
      logger.info({ task_id: 't' }, 'inside')
      span.end()
    })
    logger.info({}, 'outside')
    const span = exporter.getFinishedSpans().at(-1)!.spanContext()
    expect(lines[0]).toMatchObject({ task_id: 't', trace_id: span.traceId, span_id: span.spanId })
    expect(lines[1]).not.toHaveProperty('trace_id')
  })

  it.each(backends.filter((b) => b.available))(
    'a task’s log lines carry the trace it was submitted in ($label)',
    async (backend) => {
      const { lines, logger } = capture('debug')
      const queue = backend.queue({ logger })
      const worker = trackWorker({ queue }).handle(job, (_input, ctx) => {
        ctx.logger.info({}, 'inside the handler')
        return 'done'
      })
      await worker.start()
      const { task, traceId } = await tracer.startActiveSpan('request', async (span) => {
        const task = await queue.submit(job, { ok: true })
        span.end()
        return { task, traceId: span.spanContext().traceId }
      })
      await waitForTask(queue, task.id)
      await until(() => lines.some((l) => l.task_id === task.id && /completed/.test(String(l.message))), 5000)
      await worker.close()
      const of = (message: RegExp) =>
        lines.find((l) => l.task_id === task.id && message.test(String(l.message)))
      for (const message of [/submitted/, /inside the handler/, /completed/])
        expect(of(message), String(message)).toMatchObject({ trace_id: traceId, span_id: expect.any(String) })
    },
  )
})

describe('TASKLOOM_LOG_LEVEL', () => {
  const saved = process.env.TASKLOOM_LOG_LEVEL
  afterEach(() => {
    if (saved === undefined) delete process.env.TASKLOOM_LOG_LEVEL
    else process.env.TASKLOOM_LOG_LEVEL = saved
  })

  it('sets the default logger’s level and pinoOptions’ level when the code gives none', () => {
    const lines: string[] = []
    const write = (l: string) => lines.push(l)
    process.env.TASKLOOM_LOG_LEVEL = 'DEBUG'
    createJsonLogger({ write }).debug({}, 'shown')
    expect(pinoOptions().level).toBe('debug')
    process.env.TASKLOOM_LOG_LEVEL = 'error'
    createJsonLogger({ write }).warn({}, 'hidden')
    process.env.TASKLOOM_LOG_LEVEL = 'silent'
    createJsonLogger({ write }).error({}, 'hidden too')
    expect(lines.map((l) => JSON.parse(l).message)).toEqual(['shown'])
    // A level given in code wins.
    createJsonLogger({ write, level: 'info' }).info({}, 'explicit')
    expect(pinoOptions({ level: 'warn' }).level).toBe('warn')
    expect(lines).toHaveLength(2)
    delete process.env.TASKLOOM_LOG_LEVEL
    expect(pinoOptions().level).toBe('info')
  })

  it('rejects an unknown level with INVALID_OPTIONS naming the variable, also from createQueue', () => {
    process.env.TASKLOOM_LOG_LEVEL = 'verbose'
    expect(() => createJsonLogger()).toThrowError(
      /TASKLOOM_LOG_LEVEL must be one of debug, info, warn, error, silent \(got "verbose"\)/,
    )
    expect(() => createQueue({ name: 'log-level-check', postgres: false })).toThrowError(TaskloomError)
    delete process.env.TASKLOOM_LOG_LEVEL
    expect(() => createJsonLogger({ level: 'loud' as never })).toThrowError(/level must be one of/)
  })
})

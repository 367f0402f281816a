import { Writable } from 'node:stream'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { defineTask } from '../../src/index.js'
import { childLogger, createJsonLogger, pinoOptions } from '../../src/logger.js'
import { waitForTask } from '../../src/testing.js'
import { backends, trackWorker, until } from '../helpers/backends.js'

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

/** taskloom through its public API, Redis-only mode (no `postgres`). */
import { z } from 'zod'
import { createQueue, createWorker, defineTask, type Logger } from '../src/index.js'
import type { BenchInput, Driver, QueueHandle, WorkerHandle, WorkerSpec } from './driver.js'

const noop = defineTask({ name: 'noop', input: z.object({ t: z.number() }) })

/** Bulk loads go out in chunks of this many, a few chunks at once. */
const LOAD_CHUNK = 5_000
const LOAD_PARALLEL = 4

/** Warnings and errors on stderr; info (worker started/closed) is noise here. */
const logger: Logger = {
  debug() {},
  info() {},
  warn: (obj: unknown, msg?: string) => console.error('[taskloom warn]', msg ?? '', JSON.stringify(obj)),
  error: (obj: unknown, msg?: string) => console.error('[taskloom error]', msg ?? '', JSON.stringify(obj)),
} as Logger

export function taskloomDriver(redisUrl: string): Driver {
  return {
    id: 'tl',
    label: 'taskloom',
    keyPattern: (name) => `tl:{${name}}:*`,
    async open(name) {
      const queue = createQueue({ name, redis: redisUrl, logger })
      await queue.counts() // connect now, not inside the first timed call
      const handle: QueueHandle = {
        async submit(input: BenchInput) {
          await queue.submit(noop, input)
        },
        async load(count) {
          let next = 0
          const loop = async () => {
            while (next < count) {
              const n = Math.min(LOAD_CHUNK, count - next)
              next += n
              const t = performance.now()
              await queue.submitMany(Array.from({ length: n }, () => ({ task: noop, input: { t } })))
            }
          }
          await Promise.all(Array.from({ length: LOAD_PARALLEL }, loop))
        },
        async worker(spec: WorkerSpec): Promise<WorkerHandle> {
          const w = createWorker({
            queue,
            concurrency: spec.concurrency,
            batchSize: spec.concurrency,
            leaseMs: 30_000,
            logger,
          })
          const onStart = spec.onStart
          w.handle(noop, async (input) => {
            onStart?.(input)
          })
          w.on('task:completed', () => spec.onCompleted())
          w.on('task:failed', (e) => spec.onError(new Error(`task failed: ${JSON.stringify(e.error)}`)))
          w.on('task:stale', (e) => spec.onError(new Error(`stale ${e.stage} of task ${e.task.id}`)))
          w.on('worker:error', (e) => spec.onError(e.error))
          return {
            start: () => void w.start().catch(spec.onError),
            close: () => w.close({ graceMs: 10_000 }),
          }
        },
        async counts() {
          const c = await queue.counts()
          const ready = c.ready.critical + c.ready.high + c.ready.normal + c.ready.low
          return { unfinished: ready + c.delayed + c.processing, failed: c.dead }
        },
        close: () => queue.close(),
      }
      return handle
    },
  }
}

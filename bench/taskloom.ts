/**
 * taskloom through its public API: Redis-only mode (no `postgres`), or durable mode (PostgreSQL
 * first, then Redis; the change feed brings worker state changes back to PostgreSQL).
 */
import pg from 'pg'
import { z } from 'zod'
import { createQueue, createWorker, defineTask, type Logger, type Queue } from '../src/index.js'
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
  isLevelEnabled: (level: string) => level === 'warn' || level === 'error',
} as Logger

/**
 * BENCH_TL_EVENTS=1: a queue-events listener is subscribed to every taskloom queue, so the scripts
 * write an event per task change (the cost of listening; without one they only check that nobody is).
 */
async function listenIfAsked(queue: Queue): Promise<void> {
  if (process.env.BENCH_TL_EVENTS !== '1') return
  queue.events.on('completed', () => {})
  await queue.events.live().ready
}

export function taskloomDriver(redisUrl: string): Driver {
  return {
    id: 'tl',
    label: 'taskloom',
    keyPattern: (name) => `tl:{${name}}:*`,
    async open(name) {
      const queue = createQueue({ name, redis: redisUrl, logger })
      await queue.counts() // connect now, not inside the first timed call
      await listenIfAsked(queue)
      return queueHandle(queue)
    },
  }
}

/**
 * Durable mode in its own schema, created by the queue's `migrate: true` and dropped by
 * `dispose()`. The runner's pool (2 connections) reads the store's counts and deletes each queue's
 * rows after its scenario; it is not the store's pool (taskloom opens its own from the URL).
 */
export function durableDriver(redisUrl: string, postgresUrl: string, schema: string): Driver {
  if (!/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error(`invalid schema name ${schema}`)
  const admin = new pg.Pool({ connectionString: postgresUrl, max: 2 })
  admin.on('error', () => {}) // an idle client's error; the next query reports it
  const tasks = `${schema}.tasks`
  return {
    id: 'tlpg',
    label: 'taskloom durable',
    // Claim cost at 1M queued and Redis bytes per task are the Redis broker's, the same as Redis-only.
    scenarios: ['submit', 'drain', 'latency'],
    keyPattern: (name) => `tl:{${name}}:*`,
    async open(name) {
      const queue = createQueue({
        name,
        redis: redisUrl,
        postgres: postgresUrl,
        postgresSchema: schema,
        migrate: true,
        logger,
      })
      await queue.ready()
      await queue.counts()
      return {
        ...queueHandle(queue),
        async storeCompleted() {
          const r = await admin.query<{ n: string }>(
            `select count(*) as n from ${tasks} where queue = $1 and status = 'completed'`,
            [name],
          )
          return Number(r.rows[0]!.n)
        },
      }
    },
    async cleanup(name) {
      // Nothing to delete if the schema was never created (the queue failed to open).
      const exists = await admin.query('select to_regclass($1) as t', [tasks])
      if (exists.rows[0]?.t) await admin.query(`delete from ${tasks} where queue = $1`, [name])
    },
    async dispose() {
      try {
        await admin.query(`drop schema if exists ${schema} cascade`)
      } finally {
        await admin.end()
      }
    },
  }
}

function queueHandle(queue: Queue): QueueHandle {
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
}

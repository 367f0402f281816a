/**
 * Runs a suite against every broker: the in-process one and Redis. Tracks the queues and workers a
 * test creates, closes them after it, and fails a test that leaves a worker running.
 */
import { afterEach, expect } from 'vitest'
import {
  createQueue,
  createWorker,
  type Queue,
  type QueueOptions,
  type Worker,
  type WorkerOptions,
} from '../../src/index.js'
import { DATABASE_URL, hasPostgres, hasRedis, uniqueName } from './services.js'
import { onCluster, TEST_REDIS } from './test-redis.js'

/** Tests assert on behaviour, not log lines: keep the output readable. */
export const silent = { debug() {}, info() {}, warn() {}, error() {} }

export interface Backend {
  label: string
  /** False when the backend's server is unreachable (the suite is skipped, loudly). */
  available: boolean
  queue(options?: Partial<QueueOptions>): Queue
  /** A second handle on the same queue, as another process would have (same object for memory). */
  peer(queue: Queue): Queue
}

const queues: Queue[] = []
const workers: Worker[] = []

export function trackWorker(options: WorkerOptions): Worker {
  const worker = createWorker(options)
  workers.push(worker)
  return worker
}

afterEach(async () => {
  const left = workers.splice(0)
  const running = left.filter((w) => (w as unknown as { state: string }).state === 'running')
  await Promise.all(left.map((w) => w.close({ graceMs: 0 })))
  await Promise.all(queues.splice(0).map((q) => q.close()))
  expect(running.length, 'a test left a worker running; close it in the test').toBe(0)
})

const redisUp = await hasRedis()
const postgresUp = await hasPostgres()

/** Durable-mode tests share one schema; every queue has its own rows (queue names are unique). */
export const TEST_SCHEMA = 'taskloom_test'

/** In the `cluster` test project only the Redis backends run (on the cluster): memory ran already. */
const all: Backend[] = [
  {
    label: 'memory',
    available: true,
    queue: (options) => {
      const q = createQueue({ name: uniqueName(), postgres: false, logger: silent, ...options })
      queues.push(q)
      return q
    },
    peer: (queue) => queue,
  },
  {
    label: 'redis',
    available: redisUp,
    queue: (options) => {
      const q = createQueue({ name: uniqueName(), redis: TEST_REDIS, logger: silent, ...options })
      queues.push(q)
      return q
    },
    peer: (queue) => {
      const q = createQueue({ name: queue.name, redis: TEST_REDIS, logger: silent })
      queues.push(q)
      return q
    },
  },
  {
    label: 'durable',
    available: redisUp && postgresUp,
    queue: (options) => {
      const q = createQueue({ ...durable(uniqueName()), ...options })
      queues.push(q)
      return q
    },
    peer: (queue) => {
      const q = createQueue(durable(queue.name))
      queues.push(q)
      return q
    },
  },
]
export const backends: Backend[] = onCluster ? all.filter((b) => b.label !== 'memory') : all

function durable(name: string): QueueOptions {
  return {
    name,
    redis: TEST_REDIS,
    postgres: DATABASE_URL,
    postgresSchema: TEST_SCHEMA,
    migrate: true,
    logger: silent,
  }
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes. */
export async function until<T>(
  check: () => T | Promise<T>,
  timeoutMs = 5000,
  what = 'condition',
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value) return value as NonNullable<T>
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/**
 * Queues for the schedule and definition suites: embedded (in-process broker + in-memory PGlite)
 * and durable (shared Redis + shared PostgreSQL, in a schema of these suites' own).
 */
import type { ChildProcess, SpawnOptions } from 'node:child_process'
import { afterEach, vi } from 'vitest'
import { createQueue, type Queue, type QueueOptions, type Scheduler } from '../../src/index.js'
import { silent } from '../helpers/backends.js'
import { DATABASE_URL, hasPostgres, hasRedis, REDIS_URL, uniqueName } from '../helpers/services.js'
import { spawnFixture } from '../helpers/spawn-fixture.js'

export const SCHED_SCHEMA = 'taskloom_sched_test'

// An embedded queue starts PGlite (Postgres in WASM) and migrates it: ~10 s on a busy two-core box.
vi.setConfig({ testTimeout: 90_000, hookTimeout: 60_000 })

const queues: Queue[] = []
const schedulers: Scheduler[] = []

afterEach(async () => {
  await Promise.all(schedulers.splice(0).map((s) => s.close()))
  await Promise.all(queues.splice(0).map((q) => q.close()))
})

export function track<T extends Queue | Scheduler>(x: T): T {
  if ('submit' in x) queues.push(x)
  else schedulers.push(x as Scheduler)
  return x
}

export function durableOptions(name: string): QueueOptions {
  return {
    name,
    redis: REDIS_URL,
    postgres: DATABASE_URL,
    postgresSchema: SCHED_SCHEMA,
    migrate: true,
    logger: silent,
  }
}

export interface SchedBackend {
  label: string
  available: boolean
  queue(options?: Partial<QueueOptions>): Queue
  /** Another handle on the same queue, as another process has (only where the backend shares). */
  peer?(queue: Queue, options?: Partial<QueueOptions>): Queue
}

const up = (await hasRedis()) && (await hasPostgres())

export const schedBackends: SchedBackend[] = [
  {
    label: 'embedded',
    available: true,
    queue: (options) => track(createQueue({ name: uniqueName('sch'), logger: silent, ...options })),
  },
  {
    label: 'durable',
    available: up,
    queue: (options) => track(createQueue({ ...durableOptions(uniqueName('sch')), ...options })),
    peer: (queue, options) => track(createQueue({ ...durableOptions(queue.name), ...options })),
  },
]

/**
 * A scheduler in a process of its own (test/fixtures/scheduler-process.ts) on the queue `name`, on
 * the shared servers and SCHED_SCHEMA; `options` are spawn's (stdio, env).
 */
export function spawnScheduler(name: string, options: SpawnOptions): ChildProcess {
  return spawnFixture(
    'test/fixtures/scheduler-process.ts',
    [REDIS_URL, DATABASE_URL, SCHED_SCHEMA, name],
    options,
  )
}

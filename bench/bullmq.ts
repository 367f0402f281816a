/**
 * BullMQ with a fair configuration: its own connections (ioredis defaults plus the
 * `maxRetriesPerRequest: null` its workers require), `removeOnComplete: true` so it does not pay
 * for keeping finished jobs, and the same concurrency as taskloom.
 */
import { type ConnectionOptions, Queue, Worker } from 'bullmq'
import type { BenchInput, Driver, QueueHandle, WorkerHandle, WorkerSpec } from './driver.js'

const LOAD_CHUNK = 5_000
const LOAD_PARALLEL = 4
const JOB_OPTS = { removeOnComplete: true }

export function bullmqDriver(redisUrl: string): Driver {
  const connection = connectionFromUrl(redisUrl)
  return {
    id: 'bull',
    label: 'BullMQ',
    keyPattern: (name) => `bull:${name}:*`,
    async open(name) {
      const queue = new Queue<BenchInput>(name, { connection, defaultJobOptions: JOB_OPTS })
      await queue.waitUntilReady()
      const handle: QueueHandle = {
        async submit(input) {
          await queue.add('noop', input)
        },
        async load(count) {
          let next = 0
          const loop = async () => {
            while (next < count) {
              const n = Math.min(LOAD_CHUNK, count - next)
              next += n
              const t = performance.now()
              await queue.addBulk(
                Array.from({ length: n }, () => ({ name: 'noop', data: { t }, opts: JOB_OPTS })),
              )
            }
          }
          await Promise.all(Array.from({ length: LOAD_PARALLEL }, loop))
        },
        async worker(spec: WorkerSpec): Promise<WorkerHandle> {
          const onStart = spec.onStart
          const w = new Worker<BenchInput>(
            name,
            async (job) => {
              onStart?.(job.data)
            },
            { connection, concurrency: spec.concurrency, autorun: false },
          )
          w.on('completed', () => spec.onCompleted())
          w.on('failed', (_job, err) => spec.onError(err))
          w.on('error', (err) => spec.onError(err))
          await w.waitUntilReady()
          return {
            start: () => void w.run().catch(spec.onError),
            close: () => w.close(),
          }
        },
        async counts() {
          const c = await queue.getJobCounts(
            'wait',
            'paused',
            'prioritized',
            'delayed',
            'active',
            'waiting-children',
            'failed',
          )
          const unfinished =
            (c.wait ?? 0) + (c.paused ?? 0) + (c.prioritized ?? 0) + (c.delayed ?? 0) + (c.active ?? 0)
          return { unfinished: unfinished + (c['waiting-children'] ?? 0), failed: c.failed ?? 0 }
        },
        close: () => queue.close(),
      }
      return handle
    },
  }
}

/** BullMQ's connection options for a Redis URL (its workers need `maxRetriesPerRequest: null`). */
export function connectionFromUrl(url: string): ConnectionOptions {
  const u = new URL(url)
  return {
    host: u.hostname || '127.0.0.1',
    port: Number(u.port || 6379),
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    db: Number(u.pathname.slice(1) || 0),
    tls: u.protocol === 'rediss:' ? {} : undefined,
    maxRetriesPerRequest: null,
  }
}

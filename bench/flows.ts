/**
 * `npm run bench:flows`: flows on Redis, taskloom (Redis-only mode) beside BullMQ's FlowProducer in
 * the same run (docs/benchmarks.md). Two shapes: one parent with `--children` children (default
 * 10,000), and `--chains` chains (default 1,000) of `--length` steps (default 10). Each side has one
 * worker (concurrency 100, noop handlers) running before the submit; the figures are the submit
 * call's time and the time from the submit's start until the last parent (root) completed. Deletes
 * only the keys of the queues it made.
 */
import { Worker as BullWorker, type FlowJob, FlowProducer } from 'bullmq'
import { z } from 'zod'
import { createQueue, createWorker, defineTask } from '../src/index.js'
import { connectionFromUrl } from './bullmq.js'
import { numericArgs } from './cli-args.js'
import { RedisAdmin } from './redis-admin.js'
import { fmtMs } from './stats.js'

const args = numericArgs()
const REDIS = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const CHILDREN = args.children ?? 10_000
const CHAINS = args.chains ?? 1_000
const LENGTH = args.length ?? 10
const CONCURRENCY = 100
/** Chains submitted at once (each is one call on either side). */
const IN_FLIGHT = 16
const TIMEOUT_MS = 120_000
const run = `bench-flows-${Date.now().toString(36)}`
const silent = { debug() {}, info() {}, warn: console.error, error: console.error }
const step = defineTask({ name: 'step', input: z.object({ i: z.number() }) })

interface Shape {
  label: string
  /** Submits the shape; answers the roots' ids. */
  taskloom(queue: ReturnType<typeof createQueue>): Promise<string[]>
  bull(producer: FlowProducer, queueName: string): Promise<string[]>
}

const fanOut: Shape = {
  label: `1 parent, ${CHILDREN.toLocaleString('en')} children`,
  async taskloom(queue) {
    const children = Array.from({ length: CHILDREN }, (_, i) => ({ task: step, input: { i } }))
    const { rootId } = await queue.flow({ task: step, input: { i: -1 }, children })
    return [rootId!]
  },
  async bull(producer, queueName) {
    const children = Array.from({ length: CHILDREN }, (_, i) => ({
      name: 'step',
      queueName,
      data: { i },
      opts,
    }))
    const node = await producer.add({ name: 'step', queueName, data: { i: -1 }, opts, children })
    return [node.job.id!]
  },
}

const chains: Shape = {
  label: `${CHAINS.toLocaleString('en')} chains of ${LENGTH}`,
  async taskloom(queue) {
    const steps = Array.from({ length: LENGTH }, (_, i) => ({ task: step, input: { i } }))
    return inBatches(CHAINS, async () => (await queue.chain(steps)).rootId!)
  },
  async bull(producer, queueName) {
    // A chain in BullMQ is a tree where each parent has one child: the deepest runs first.
    const chain = (): FlowJob => {
      let node: FlowJob = { name: 'step', queueName, data: { i: 0 }, opts }
      for (let i = 1; i < LENGTH; i++) node = { name: 'step', queueName, data: { i }, opts, children: [node] }
      return node
    }
    return inBatches(CHAINS, async () => (await producer.add(chain())).job.id!)
  },
}

/** Keeps finished BullMQ jobs out of Redis, as bench/bullmq.ts does (taskloom keeps its records). */
const opts = { removeOnComplete: true }

async function inBatches(count: number, one: () => Promise<string>): Promise<string[]> {
  const ids: string[] = []
  let next = 0
  const loop = async () => {
    while (next < count) {
      next++
      ids.push(await one())
    }
  }
  await Promise.all(Array.from({ length: IN_FLIGHT }, loop))
  return ids
}

interface Figures {
  submitMs: number
  doneMs: number
}

async function onTaskloom(shape: Shape, name: string): Promise<Figures> {
  const queue = createQueue({ name, redis: REDIS, logger: silent })
  const worker = createWorker({ queue, concurrency: CONCURRENCY, logger: silent })
  worker.handle(step, () => undefined)
  await worker.start()
  try {
    const started = performance.now()
    const roots = await shape.taskloom(queue)
    const submitMs = performance.now() - started
    const done = await Promise.all(roots.map((id) => queue.waitFor(id, { timeoutMs: TIMEOUT_MS })))
    const doneMs = performance.now() - started
    const bad = done.filter((t) => t.status !== 'completed').length
    if (bad > 0) throw new Error(`taskloom: ${bad} root(s) did not complete`)
    return { submitMs, doneMs }
  } finally {
    await worker.close()
    await queue.close()
  }
}

async function onBull(shape: Shape, name: string): Promise<Figures> {
  const connection = connectionFromUrl(REDIS)
  const producer = new FlowProducer({ connection })
  const pending = new Set<string>()
  let submitted = false
  let resolveDone!: () => void
  const allDone = new Promise<void>((resolve) => {
    resolveDone = resolve
  })
  const worker = new BullWorker(name, async () => undefined, { connection, concurrency: CONCURRENCY })
  const early = new Set<string>()
  worker.on('completed', (job) => {
    if (!job.parentKey && job.id) {
      if (!submitted) early.add(job.id)
      else if (pending.delete(job.id) && pending.size === 0) resolveDone()
    }
  })
  worker.on('failed', (_job, err) => console.error(err))
  await worker.waitUntilReady()
  try {
    const started = performance.now()
    const roots = await shape.bull(producer, name)
    const submitMs = performance.now() - started
    for (const id of roots) if (!early.has(id)) pending.add(id)
    submitted = true
    if (pending.size > 0) {
      const timeout = setTimeout(() => console.error('BullMQ: timed out'), TIMEOUT_MS)
      await allDone
      clearTimeout(timeout)
    }
    return { submitMs, doneMs: performance.now() - started }
  } finally {
    await worker.close()
    await producer.close()
  }
}

const admin = new RedisAdmin(REDIS)
console.log(
  `bench:flows on ${REDIS} (Redis ${await admin.serverVersion()}), worker concurrency ${CONCURRENCY}`,
)
console.log('shape                         side       submit ms   last parent done ms')
let n = 0
try {
  for (const shape of [fanOut, chains]) {
    for (const side of ['taskloom', 'BullMQ'] as const) {
      const name = `${run}-${n++}`
      try {
        const f = side === 'taskloom' ? await onTaskloom(shape, name) : await onBull(shape, name)
        console.log(
          `${shape.label.padEnd(30)}${side.padEnd(11)}${fmtMs(f.submitMs).padStart(10)}  ${fmtMs(f.doneMs).padStart(12)}`,
        )
      } finally {
        await admin.deleteMatching(side === 'taskloom' ? `tl:{${name}}:*` : `bull:${name}:*`)
      }
    }
  }
} finally {
  await admin.close()
}
process.exit(0)

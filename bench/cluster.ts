/**
 * `npm run bench:cluster`: Redis-only queues on one private server and on a private 3-master Redis
 * Cluster (one replica each), all on this machine. For each setup: bulk submits per second
 * (`submitMany`, 4 loops of 500), single `submit()` per second with 100 in flight, drain per second
 * (one worker, concurrency 200, noop handler), and the script calls each master ran (INFO
 * commandstats), so the spread over shards shows. A queue lives in one slot, so one queue uses one
 * shard; three queues placed on three masters show how work spreads. `waitReplicas: 1` is measured
 * on the cluster. See docs/scaling.md for figures and what they mean.
 *
 * Env: BENCH_CLUSTER_TASKS (default 20,000 per queue).
 */
import { register } from 'node:module'

register('../scripts/lua-hooks.mjs', import.meta.url)
const { Redis } = await import('ioredis')
const { z } = await import('zod')
const { createQueue, createWorker, defineTask } = await import('../src/index.js')
const { startPrivateCluster } = await import('../test/helpers/private-cluster.js')
const { startPrivateRedis } = await import('../test/helpers/private-redis.js')

type Queue = ReturnType<typeof createQueue>
type RedisInput = Parameters<typeof createQueue>[0]['redis']

const TASKS = Number(process.env.BENCH_CLUSTER_TASKS ?? 20_000)
const noop = defineTask({ name: 'noop', input: z.object({}) })
const silent = { debug() {}, info() {}, warn() {}, error() {} }
let serial = 0

async function submitMany(queue: Queue, count: number): Promise<void> {
  let next = 0
  const loop = async () => {
    while (next < count) {
      const n = Math.min(500, count - next)
      next += n
      await queue.submitMany(Array.from({ length: n }, () => ({ task: noop, input: {} })))
    }
  }
  await Promise.all(Array.from({ length: 4 }, loop))
}

async function submitSingles(queue: Queue, count: number): Promise<number[]> {
  let next = 0
  const latencies: number[] = []
  const loop = async () => {
    while (next++ < count) {
      const t = performance.now()
      await queue.submit(noop, {})
      latencies.push(performance.now() - t)
    }
  }
  await Promise.all(Array.from({ length: 100 }, loop))
  return latencies.sort((a, b) => a - b)
}

async function drain(queue: Queue, count: number): Promise<void> {
  let done = 0
  const worker = createWorker({ queue, concurrency: 200, batchSize: 200, logger: silent })
  worker.handle(noop, async () => {})
  const finished = new Promise<void>((resolve) => {
    worker.on('task:completed', () => {
      if (++done === count) resolve()
    })
  })
  await worker.start()
  await finished
  await worker.close()
}

/**
 * Script calls (EVALSHA + EVAL) each node ran so far, and the CPU time the server process used
 * (INFO cpu, user + system, in µs): CPU time, unlike commandstats' wall-clock usec, is not
 * inflated when other processes share the cores.
 */
async function scriptCalls(ports: readonly number[]): Promise<{ calls: number; usec: number }[]> {
  return Promise.all(
    ports.map(async (port) => {
      const r = new Redis(port, '127.0.0.1')
      const info = await r.info('commandstats')
      const cpu = await r.info('cpu')
      r.disconnect()
      let calls = 0
      for (const m of info.matchAll(/^cmdstat_(evalsha|eval):calls=(\d+)/gm)) calls += Number(m[2])
      const seconds = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(cpu)?.[1] ?? 0)
      return { calls, usec: (seconds('used_cpu_user') + seconds('used_cpu_sys')) * 1e6 }
    }),
  )
}

const rate = (n: number, ms: number) => Math.round((n * 1000) / ms).toLocaleString('en-US')

interface Setup {
  label: string
  redis: (extra?: { waitReplicas?: number }) => RedisInput
  /** Queue names, one per master when there are several. */
  names: string[]
  masters: number[]
}

async function measure(setup: Setup, queues: number, waitReplicas = 0): Promise<void> {
  const names = setup.names.slice(0, queues)
  const made = names.map((name) =>
    createQueue({ name: `${name}-${serial++}`, redis: setup.redis({ waitReplicas }), logger: silent }),
  )
  const before = await scriptCalls(setup.masters)
  let t = performance.now()
  await Promise.all(made.map((q) => submitMany(q, TASKS)))
  const bulkMs = performance.now() - t
  t = performance.now()
  await Promise.all(made.map((q) => drain(q, TASKS)))
  const drainMs = performance.now() - t
  const singles = Math.min(TASKS, 10_000)
  t = performance.now()
  const latencies = (await Promise.all(made.map((q) => submitSingles(q, singles))))
    .flat()
    .sort((a, b) => a - b)
  const singleMs = performance.now() - t
  await Promise.all(made.map((q) => drain(q, singles)))
  const after = await scriptCalls(setup.masters)
  const spread = after.map((a, i) => a.calls - before[i]!.calls)
  const usec = after.reduce((sum, a, i) => sum + a.usec - before[i]!.usec, 0)
  const total = queues * TASKS
  // Each task was submitted, claimed and completed once: the servers' CPU per task, all told.
  const perTask = usec / (total + queues * Math.min(TASKS, 10_000))
  const p = (q: number) => latencies[Math.floor(q * (latencies.length - 1))]!.toFixed(2)
  console.log(
    `${setup.label}, ${queues} queue(s)${waitReplicas ? `, waitReplicas ${waitReplicas}` : ''}: ` +
      `submitMany ${rate(total, bulkMs)}/s, submit() ${rate(queues * singles, singleMs)}/s ` +
      `(p50 ${p(0.5)} ms, p99 ${p(0.99)} ms), drain ${rate(total, drainMs)}/s; ` +
      `script calls per master: ${spread.join(' / ')}; ` +
      `Redis CPU ${perTask.toFixed(1)} µs per task (one shard: ${rate(1, perTask / 1000)} tasks/s)`,
  )
  await Promise.all(made.map((q) => q.close()))
}

const server = await startPrivateRedis()
const cluster = await startPrivateCluster()
try {
  await measure(
    { label: 'one server', redis: () => server.url, names: ['bench-one'], masters: [server.port] },
    1,
  )
  const masters = (await cluster.members()).filter((m) => m.master).map((m) => m.port)
  // A queue's slot decides its master; measure() suffixes names with a serial, so each name is
  // placed for the serial it will get.
  const placed = async (count: number): Promise<string[]> => {
    const out: string[] = []
    const used = new Set<number>()
    for (let i = 0; out.length < count; i++) {
      const name = `bench-c${i}`
      const owner = await cluster.masterOf(`tl:{${name}-${serial + out.length}}:`)
      if (used.has(owner)) continue
      used.add(owner)
      out.push(name)
    }
    return out
  }
  const onCluster = async (label: string, queues: number, waitReplicas = 0) =>
    measure(
      {
        label,
        redis: (extra) => ({ cluster: cluster.seeds, ...extra }),
        names: await placed(queues),
        masters,
      },
      queues,
      waitReplicas,
    )
  await onCluster('cluster (3 masters)', 1)
  await onCluster('cluster (3 masters)', 1, 1)
  await onCluster('cluster (3 masters)', 3)
} finally {
  await cluster.stop()
  await server.stop()
}

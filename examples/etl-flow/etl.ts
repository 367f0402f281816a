/**
 * An ETL pipeline as one flow, on the embedded defaults (in-process broker + PGlite; no servers):
 * extract → transform, fanned out to 8 chunks → load → report. Each step's result is typed by its
 * task's `output` schema and read downstream with `ctx.resultOf`; the chunks report `ctx.progress`
 * and the load writes `ctx.log` lines. Set REDIS_URL (and DATABASE_URL) to run it on servers.
 *
 *   npm run example:etl          (CHUNKS=16 npm run example:etl for a wider fan-out)
 */
import { z } from 'zod'
import { createQueue, createWorker, defineTask, type TaskContext } from '../../src/index.js'

const CHUNKS = Number(process.env.CHUNKS ?? 8)
const ROWS_PER_CHUNK = 250

const extract = defineTask({
  name: 'etl-extract',
  input: z.object({ day: z.string() }),
  output: z.object({ day: z.string(), rows: z.number().int(), chunks: z.number().int() }),
})
const transform = defineTask({
  name: 'etl-transform',
  input: z.object({ chunk: z.number().int().nonnegative() }),
  output: z.object({
    chunk: z.number().int(),
    kept: z.number().int(),
    dropped: z.number().int(),
    cents: z.number(),
  }),
})
const load = defineTask({
  name: 'etl-load',
  input: z.object({ table: z.string() }),
  output: z.object({
    table: z.string(),
    rows: z.number().int(),
    dropped: z.number().int(),
    cents: z.number(),
  }),
})
const report = defineTask({
  name: 'etl-report',
  input: z.object({}),
  output: z.object({ summary: z.string() }),
})

// The example prints its own lines; the default logger would add JSON lines on stderr.
const quiet = { debug() {}, info() {}, warn() {}, error() {} }
const queue = createQueue({
  name: 'etl-flow',
  logger: quiet,
  ...(process.env.REDIS_URL ? { redis: process.env.REDIS_URL } : {}),
  ...(process.env.DATABASE_URL ? { postgres: process.env.DATABASE_URL, migrate: true } : {}),
})
const worker = createWorker({ queue, concurrency: 4 })

/** The ids of the dependencies this task waited for that ran `task` (a flow's dependencies are ids). */
async function upstream(ctx: TaskContext, task: { name: string }): Promise<string[]> {
  const deps = await ctx.dependencies()
  return Object.keys(deps).filter((id) => deps[id]!.name === task.name)
}

/** A made-up order: its amount in cents; every 13th order has no customer and is dropped. */
const order = (n: number) => ({
  cents: 100 + ((n * 7919) % 9900),
  customer: n % 13 === 0 ? null : `c${n % 97}`,
})

worker.handle(extract, ({ day }) => {
  // A real extract would page an API or a file into staging; here the rows are computed on demand.
  return { day, rows: CHUNKS * ROWS_PER_CHUNK, chunks: CHUNKS }
})

worker.handle(transform, async ({ chunk }, ctx) => {
  const [extractId] = await upstream(ctx, extract)
  const { rows, chunks } = await ctx.resultOf(extract, extractId!)
  const size = Math.ceil(rows / chunks)
  let kept = 0
  let dropped = 0
  let cents = 0
  for (let n = chunk * size; n < Math.min(rows, (chunk + 1) * size); n++) {
    const row = order(n)
    if (row.customer === null) dropped++
    else {
      kept++
      cents += row.cents
    }
    if ((n + 1) % 100 === 0) await ctx.progress({ chunk, done: n + 1 - chunk * size, of: size })
  }
  await ctx.progress(100)
  return { chunk, kept, dropped, cents }
})

worker.handle(load, async ({ table }, ctx) => {
  let rows = 0
  let dropped = 0
  let cents = 0
  const ids = await upstream(ctx, transform)
  for (const id of ids) {
    const part = await ctx.resultOf(transform, id)
    rows += part.kept
    dropped += part.dropped
    cents += part.cents
    await ctx.log(`chunk ${part.chunk}: ${part.kept} rows into ${table}`)
  }
  await ctx.log(`loaded ${rows} rows from ${ids.length} chunks into ${table}`)
  return { table, rows, dropped, cents }
})

worker.handle(report, async (_input, ctx) => {
  const [loadId] = await upstream(ctx, load)
  const { table, rows, dropped, cents } = await ctx.resultOf(load, loadId!)
  const summary = `${rows} rows in ${table}, ${dropped} dropped, revenue $${(cents / 100).toFixed(2)}`
  return { summary }
})

// Progress of the chunks as the queue reports it, one line per chunk when it reaches 100.
const keyOf = new Map<string, string>()
queue.events.on('progress', (e) => {
  if (e.progress === 100) console.log(`progress   ${keyOf.get(e.taskId) ?? e.taskId} 100%`)
})

await worker.start()

const day = '2026-12-07'
const chunkKeys = Array.from({ length: CHUNKS }, (_, i) => `transform-${i}`)
const started = Date.now()
const { flowId, ids } = await queue.flow({
  nodes: [
    { key: 'extract', task: extract, input: { day } },
    ...chunkKeys.map((key, chunk) => ({ key, task: transform, input: { chunk }, dependsOn: ['extract'] })),
    { key: 'load', task: load, input: { table: `orders_${day.replaceAll('-', '')}` }, dependsOn: chunkKeys },
    { key: 'report', task: report, input: {}, dependsOn: ['load'] },
  ],
})
for (const [key, id] of Object.entries(ids)) keyOf.set(id, key)
console.log(
  `submitted  flow ${flowId}: ${Object.keys(ids).length} tasks (1 extract, ${CHUNKS} transform, 1 load, 1 report)`,
)

const done = await queue.waitFor<{ summary: string }>(ids.report!, { timeoutMs: 60_000 })
const status = await queue.flowStatus(flowId)
for (const node of status?.nodes ?? []) {
  const after = node.dependsOn.length > 0 ? `  after ${node.dependsOn.length} task(s)` : ''
  console.log(`node       ${node.key.padEnd(12)} ${node.status}${after}`)
}
for (const { line } of (await queue.logs(ids.load!, { tail: 3 })).lines) console.log(`log load   ${line}`)
console.log(`report     ${done.status}: ${done.result?.summary}`)
console.log(`flow       ${status?.status} in ${Date.now() - started} ms`)

await worker.close()
await queue.close()
process.exit(done.status === 'completed' && status?.status === 'completed' ? 0 : 1)

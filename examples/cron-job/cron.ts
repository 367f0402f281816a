/**
 * A cron job on the embedded defaults (in-process broker, in-memory PGlite; no servers): a schedule
 * that fires every two seconds, a scheduler that turns its ticks into tasks, and a worker that runs
 * them. Stops after RUNS runs (default 3).
 *
 * Run it with `npm run example:cron`. With `redis` and `postgres` given to createQueue, run the
 * scheduler in as many processes as you like: each tick still becomes exactly one task.
 */
import { z } from 'zod'
import { createQueue, createScheduler, createWorker, defineTask } from '../../src/index.js'

const cleanup = defineTask({ name: 'cleanup', input: z.object({ olderThanDays: z.number().int() }) })

const quiet = { debug() {}, info() {}, warn() {}, error() {} }
const queue = createQueue({ name: 'cron-example', logger: quiet })
const runs = Number(process.env.RUNS ?? 3)

let done = 0
let finish: () => void = () => {}
const finished = new Promise<void>((resolve) => (finish = resolve))
const worker = createWorker({ queue, concurrency: 1 })
worker.handle(cleanup, async (input, ctx) => {
  const task = await queue.get(ctx.taskId)
  const tick = Number(task?.idempotencyKey?.split(':').pop())
  console.log(
    `run ${++done}: cleanup older than ${input.olderThanDays} days, tick ${new Date(tick).toISOString()}`,
  )
  if (done >= runs) finish()
})

const schedule = await queue.schedules.upsert({
  id: 'nightly-cleanup',
  cron: '*/2 * * * * *', // six fields: seconds first. '0 3 * * *' would be 03:00 every night.
  task: cleanup,
  input: { olderThanDays: 30 },
  timezone: 'UTC',
  misfire: 'run-once', // after an outage: one run for all the ticks missed
})
console.log(`schedule ${schedule.id} (${schedule.cron}), next run ${schedule.nextRunAt?.toISOString()}`)

const scheduler = createScheduler({ queue })
await worker.start()
await scheduler.start()
await finished
await scheduler.close()
await worker.close()
console.log(
  `schedule ran ${done} times; last run ${(await queue.schedules.get(schedule.id))?.lastRunAt?.toISOString()}`,
)
await queue.close()

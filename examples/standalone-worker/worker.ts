/**
 * A worker process on Redis. Start as many as you like, on as many machines as you like: they
 * share the queue. SIGTERM or SIGINT (Ctrl-C) shuts it down gracefully: it stops claiming, lets
 * running handlers finish for up to 10 s, then gives the leases of the rest back at once.
 *
 *   REDIS_URL=redis://127.0.0.1:6379 QUEUE_NAME=reports npx tsx --import ./scripts/register-lua.mjs examples/standalone-worker/worker.ts
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { createQueue, createWorker } from '../../src/index.js'
import { generateReport, QUEUE_NAME, REDIS_URL } from './tasks.js'

const queue = createQueue({ name: QUEUE_NAME, redis: REDIS_URL })
const worker = createWorker({ queue, concurrency: 20 })

worker.handle(generateReport, async ({ accountId, month }, ctx) => {
  // Stand-in for real work. Passing ctx.signal lets a timeout or a shutdown interrupt it.
  await sleep(50, undefined, { signal: ctx.signal })
  ctx.logger.info({ accountId, month }, 'report generated')
  return { accountId, month, url: `https://reports.example.com/${accountId}/${month}.pdf` }
})

worker.on('task:completed', ({ task, durationMs }) => {
  console.log(`completed ${task.id} in ${durationMs} ms (attempt ${task.attempt})`)
})
worker.on('task:failed', ({ task, error, willRetry }) => {
  console.log(`failed ${task.id}: ${error.message}${willRetry ? ' (will retry)' : ' (dead-lettered)'}`)
})

let stopping: Promise<void> | undefined
function shutdown(signal: NodeJS.Signals): Promise<void> {
  stopping ??= (async () => {
    console.log(`${signal}: stopping; ${worker.activeCount} task(s) running`)
    try {
      // Close the worker first (it uses the queue's connection), then the queue.
      await worker.close({ graceMs: 10_000 })
      await queue.close()
      console.log('worker stopped')
    } catch (error) {
      console.error('shutdown failed', error)
      process.exitCode = 1
    }
    // Nothing is left open, so Node exits by itself with process.exitCode (0 unless set above).
  })()
  return stopping
}
process.once('SIGTERM', () => void shutdown('SIGTERM'))
process.once('SIGINT', () => void shutdown('SIGINT'))

await worker.start()
console.log(`worker ${worker.id} ready on queue ${QUEUE_NAME}`)

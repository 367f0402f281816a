/**
 * A producer: submits one report per account (an idempotency key per account and month, so running
 * it twice submits nothing new), waits for the results, and exits 0 once every task completed.
 *
 *   REDIS_URL=redis://127.0.0.1:6379 QUEUE_NAME=reports npx tsx --import ./scripts/register-lua.mjs examples/standalone-worker/producer.ts
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { createQueue, type TaskInfo } from '../../src/index.js'
import { generateReport, QUEUE_NAME, REDIS_URL } from './tasks.js'

const count = Number(process.env.COUNT ?? 5)
const month = '2025-01'
const queue = createQueue({ name: QUEUE_NAME, redis: REDIS_URL })

// Concurrent submits share round trips (group commit); submitMany would send them as one batch too.
const submitted = await Promise.all(
  Array.from({ length: count }, (_, i) =>
    queue.submit(
      generateReport,
      { accountId: `acct-${i + 1}`, month },
      { idempotencyKey: `report:acct-${i + 1}:${month}` },
    ),
  ),
)
for (const s of submitted)
  console.log(`submitted ${s.id}${s.deduplicated ? ' (already submitted earlier)' : ''}`)

// Poll until every task is finished. (A worker in this process would use events instead.)
const deadline = Date.now() + 20_000
const finished = new Map<string, TaskInfo>()
while (finished.size < submitted.length && Date.now() < deadline) {
  for (const { id } of submitted) {
    if (finished.has(id)) continue
    const task = await queue.get(id)
    if (task && ['completed', 'failed', 'cancelled'].includes(task.status)) finished.set(id, task)
  }
  if (finished.size < submitted.length) await sleep(50)
}

let ok = 0
for (const { id } of submitted) {
  const task = finished.get(id)
  console.log(
    `task ${id} ${task?.status ?? 'unfinished'}${task?.result ? ` ${JSON.stringify(task.result)}` : ''}`,
  )
  if (task?.status === 'completed') ok += 1
}
console.log(`${ok} of ${submitted.length} completed`)
await queue.close()
if (ok !== submitted.length) process.exitCode = 1

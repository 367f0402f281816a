/**
 * taskloom in one file, on the in-process broker (no servers needed): two tasks, four priorities,
 * a retry, a delayed task, a cancelled one, a dead-lettered one and an idempotent duplicate.
 *
 * Run it with `npm run demo`.
 */
import { z } from 'zod'
import { createQueue, createWorker, defineTask, NonRetryableError, type SubmitResult } from '../src/index.js'
import { waitForTask } from '../src/testing.js'

const sendEmail = defineTask({
  name: 'send-email',
  input: z.object({ to: z.email(), subject: z.string().min(1) }),
})

const resizeImage = defineTask({
  name: 'resize-image',
  input: z.object({ url: z.url(), width: z.number().int().positive(), flaky: z.boolean().default(false) }),
  defaults: { maxRetries: 2 },
})

// The demo prints its own lines from worker events; the default logger would add JSON lines on stderr.
const quiet = { debug() {}, info() {}, warn() {}, error() {} }
const queue = createQueue({ name: 'demo', logger: quiet })

// Submitted before the worker starts, so the run order shows the priorities.
const labels = new Map<string, string>()
async function submit(label: string, submission: Promise<SubmitResult>): Promise<string> {
  const { id, deduplicated } = await submission
  if (!labels.has(id)) labels.set(id, label)
  const note = deduplicated ? `  (deduplicated: the same task as ${labels.get(id)})` : ''
  console.log(`submitted  ${label.padEnd(18)} ${id}${note}`)
  return id
}

const welcome = { to: 'ada@example.com', subject: 'Welcome' }
await submit('welcome', queue.submit(sendEmail, welcome, { idempotencyKey: 'welcome:ada' }))
await submit('welcome-again', queue.submit(sendEmail, welcome, { idempotencyKey: 'welcome:ada' }))
await submit(
  'newsletter',
  queue.submit(sendEmail, { to: 'eve@example.com', subject: 'News' }, { priority: 'low' }),
)
await submit(
  'password-reset',
  queue.submit(sendEmail, { to: 'bob@example.com', subject: 'Reset' }, { priority: 'critical' }),
)
await submit(
  'thumbnail',
  queue.submit(
    resizeImage,
    { url: 'https://example.com/a.png', width: 200, flaky: true },
    { priority: 'high' },
  ),
)
await submit('broken-image', queue.submit(resizeImage, { url: 'https://example.com/gone.png', width: 100 }))
await submit(
  'reminder',
  queue.submit(sendEmail, { to: 'ada@example.com', subject: 'Reminder' }, { delayMs: 500 }),
)
const digest = await submit(
  'digest',
  queue.submit(sendEmail, { to: 'bob@example.com', subject: 'Digest' }, { delayMs: 60_000 }),
)
await queue.cancel(digest)

// One handler at a time so the order is easy to read; a short backoff so the retry comes quickly.
const worker = createWorker({ queue, concurrency: 1, backoff: { baseMs: 200, maxMs: 1000, jitter: 0 } })
const label = (id: string) => (labels.get(id) ?? id).padEnd(18)

worker.handle(sendEmail, async ({ to, subject }, ctx) => {
  console.log(`ran        ${label(ctx.taskId)} attempt ${ctx.attempt}: "${subject}" to ${to}`)
  return { messageId: `msg-${ctx.taskId.slice(0, 8)}` }
})

worker.handle(resizeImage, async ({ url, width, flaky }, ctx) => {
  console.log(`ran        ${label(ctx.taskId)} attempt ${ctx.attempt}: ${url} at ${width}px`)
  if (url.endsWith('gone.png')) throw new NonRetryableError(`404 for ${url}`)
  if (flaky && ctx.attempt === 1) throw new Error('image service timed out')
  return { url: url.replace('.png', `-${width}.png`) }
})

worker.on('task:failed', ({ task, error, willRetry }) => {
  const next = willRetry ? 'will retry' : 'dead-lettered'
  console.log(`failed     ${label(task.id)} attempt ${task.attempt}: ${error.message} (${next})`)
})

await worker.start()
const finished = await Promise.all(
  [...labels.keys()].map((id) => waitForTask(queue, id, { timeoutMs: 5000 })),
)

console.log('\nfinal statuses:')
for (const task of finished) {
  const detail = task.status === 'completed' ? JSON.stringify(task.result) : (task.error?.message ?? '')
  console.log(
    `final      ${label(task.id)} ${task.status.padEnd(10)} attempts=${task.attempts}  ${detail}`.trimEnd(),
  )
}
const counts = await queue.counts()
console.log(`\ndead-letter queue: ${counts.dead} task(s)`)

await worker.close()
await queue.close()

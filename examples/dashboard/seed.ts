/**
 * Demo data for the dashboard: tasks of every status for two tenants (acme, globex), a
 * dead-letter queue with two kinds of failure, a cron schedule, and one task whose input is an
 * HTML injection attempt (the dashboard shows it as text). Used by the example and the browser tests.
 */
import { z } from 'zod'
import { defineTask, NonRetryableError, type Queue, type Worker } from '../../src/index.js'

export const sendEmail = defineTask({
  name: 'send-email',
  input: z.object({ to: z.string(), subject: z.string() }),
})
export const renderReport = defineTask({
  name: 'render-report',
  input: z.object({ report: z.string(), ms: z.number().int().min(0) }),
})
export const chargeCard = defineTask({
  name: 'charge-card',
  input: z.object({ amount: z.number(), card: z.object({ number: z.string(), holder: z.string() }) }),
  defaults: { maxRetries: 0 },
})

/** The handlers: emails complete, reports take `ms`, a card charge fails until `fixCharges()`. */
export function handleDemoTasks(worker: Worker): { fixCharges(): void } {
  let declining = true
  worker.handle(sendEmail, async (input) => ({ delivered: true, to: input.to }))
  worker.handle(renderReport, async (input, ctx) => {
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, input.ms)
      ctx.signal.addEventListener('abort', () => {
        clearTimeout(t)
        resolve()
      })
    })
    return { pages: 12 }
  })
  worker.handle(chargeCard, async (input) => {
    if (declining) {
      throw new NonRetryableError(
        input.amount > 100
          ? `card declined: insufficient funds for ${input.amount}`
          : 'card declined: expired',
      )
    }
    return { charged: input.amount }
  })
  return {
    fixCharges() {
      declining = false
    },
  }
}

export const XSS_SUBJECT =
  '<img src=x onerror="document.body.dataset.xss=1"><script>document.body.dataset.xss=2</script>'

/** Submits the demo tasks and schedule; resolves once the finished ones have finished. */
export async function seedDemo(queue: Queue): Promise<{ xssTaskId: string }> {
  for (const tenantId of ['acme', 'globex']) {
    for (let i = 0; i < 6; i++) {
      await queue.submit(
        sendEmail,
        { to: `user${i}@${tenantId}.example`, subject: `Welcome #${i}` },
        { tenantId, idempotencyKey: `welcome-${i}` },
      )
    }
    await queue.submit(
      chargeCard,
      { amount: 250, card: { number: '4111111111111111', holder: 'Ada' } },
      { tenantId },
    )
    await queue.submit(
      chargeCard,
      { amount: 40, card: { number: '4000000000000002', holder: 'Bob' } },
      { tenantId },
    )
    await queue.submit(
      chargeCard,
      { amount: 20, card: { number: '4000000000000069', holder: 'Cy' } },
      { tenantId },
    )
    // The weekly report runs for an hour; the monthly one shares its lock key, so it waits, queued.
    const lockKey = `reports-${tenantId}`
    await queue.submit(
      renderReport,
      { report: 'weekly', ms: 3_600_000 },
      { tenantId, priority: 'high', lockKey },
    )
    await queue.submit(renderReport, { report: 'monthly', ms: 10 }, { tenantId, lockKey })
    await queue.submit(
      sendEmail,
      { to: `later@${tenantId}.example`, subject: 'Reminder' },
      { tenantId, delayMs: 3_600_000 },
    )
    const doomed = await queue.submit(
      sendEmail,
      { to: `cancel@${tenantId}.example`, subject: 'Never sent' },
      { tenantId, delayMs: 3_600_000 },
    )
    await queue.cancel(doomed.id)
  }
  const xss = await queue.submit(
    sendEmail,
    { to: 'mallory@acme.example', subject: XSS_SUBJECT },
    { tenantId: 'acme' },
  )
  await queue.schedules.upsert({
    id: 'nightly-report',
    cron: '0 3 * * *',
    task: renderReport,
    input: { report: 'nightly', ms: 10 },
    tenantId: 'acme',
  })
  return { xssTaskId: xss.id }
}

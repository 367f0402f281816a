/**
 * `auditStatusChanges`: every status change the store applies is also an audit_log entry, written
 * by the same statement; without the option, none is.
 */
import pg from 'pg'
import { afterAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { defineTask, NonRetryableError, TaskloomError } from '../../src/index.js'
import { waitForTask } from '../../src/testing.js'
import { backends, TEST_SCHEMA, trackWorker, until } from '../helpers/backends.js'
import { DATABASE_URL } from '../helpers/services.js'

const durable = backends.find((b) => b.label === 'durable')!
const audited = defineTask({ name: 'audited', input: z.object({ ok: z.boolean() }) })

describe.skipIf(!durable.available)('status changes in the audit log (durable)', () => {
  const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 2 })
  afterAll(() => pool.end())
  const entries = async (id: string) =>
    (
      await pool.query<{ tenant_id: string; actor: string; details: Record<string, unknown> }>(
        `select tenant_id, actor, details from ${TEST_SCHEMA}.audit_log
         where action = 'task.status' and target_id = $1 order by at, id`,
        [id],
      )
    ).rows

  it('records each applied change with tenant, worker and status, and the failure message', async () => {
    const queue = durable.queue({ auditStatusChanges: true })
    const worker = trackWorker({ queue, concurrency: 2 }).handle(audited, ({ ok }) => {
      if (!ok) throw new NonRetryableError('card declined')
      return 'paid'
    })
    await worker.start()
    const good = await queue.submit(audited, { ok: true }, { tenantId: 'acme' })
    const bad = await queue.submit(audited, { ok: false }, { tenantId: 'globex' })
    expect((await waitForTask(queue, good.id)).status).toBe('completed')
    expect((await waitForTask(queue, bad.id)).status).toBe('failed')
    const done = await until(async () => {
      const rows = await entries(good.id)
      return rows.some((r) => r.details.status === 'completed') ? rows : null
    })
    expect(done.at(-1)).toEqual({
      tenant_id: 'acme',
      actor: `worker:${worker.id}`,
      details: { queue: queue.name, status: 'completed', attempt: 1 },
    })
    const failed = await until(async () => {
      const rows = await entries(bad.id)
      return rows.some((r) => r.details.status === 'failed') ? rows : null
    })
    expect(failed.at(-1)).toMatchObject({
      tenant_id: 'globex',
      details: { queue: queue.name, status: 'failed', error: 'card declined' },
    })
    await worker.close()
    // A change no worker made (a DLQ retry) is credited to taskloom, not to the task's last worker.
    await queue.dlq.retry(bad.id)
    const revived = await until(async () => {
      const rows = await entries(bad.id)
      return rows.at(-1)?.details.status === 'queued' ? rows : null
    })
    expect(revived.at(-1)).toMatchObject({ tenant_id: 'globex', actor: 'taskloom' })
    expect(failed.at(-1)!.actor).toBe(`worker:${worker.id}`)
  })

  it('writes nothing by default', async () => {
    const queue = durable.queue()
    const worker = trackWorker({ queue, concurrency: 1 }).handle(audited, () => 'paid')
    await worker.start()
    const task = await queue.submit(audited, { ok: true })
    expect((await waitForTask(queue, task.id)).status).toBe('completed')
    await until(async () => (await queue.list({ status: 'completed' })).total === 1)
    expect(await entries(task.id)).toEqual([])
    await worker.close()
  })

  it('rejects a non-boolean option', () => {
    expect(() => durable.queue({ auditStatusChanges: 'yes' as never })).toThrowError(TaskloomError)
  })
})

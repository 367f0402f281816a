/**
 * Every schedule change is one conditional statement (issue 14 item 7), so concurrent changes from
 * several processes never undo each other: an upsert racing a pause keeps the pause, and an upsert
 * racing a scheduler that advances the tick never moves the tick back. Real PostgreSQL, two queue
 * handles on one queue (two processes' worth of connections).
 */
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { defineTask } from '../../src/index.js'
import { internals } from '../../src/queue/internal.js'
import { schedBackends } from './harness.js'

const report = defineTask({ name: 'report', input: z.object({ n: z.number() }) })
const durable = schedBackends.find((b) => b.label === 'durable')!
const ROUNDS = 100

describe.skipIf(!durable.available)('schedule changes are atomic (durable)', () => {
  it('an upsert racing a pause never loses the pause', async () => {
    const a = durable.queue()
    const b = durable.peer!(a)
    await Promise.all([a.ready(), b.ready()])
    const lost: number[] = []
    for (let round = 0; round < ROUNDS; round++) {
      const id = `race-${round}`
      await a.schedules.upsert({ id, cron: '* * * * *', task: report, input: { n: 0 } })
      const [, paused] = await Promise.all([
        a.schedules.upsert({ id, cron: '* * * * *', task: report, input: { n: round } }),
        b.schedules.pause(id),
      ])
      expect(paused).toBe(true)
      const row = await a.schedules.get(id)
      if (!row?.paused || row.nextRunAt !== null) lost.push(round)
    }
    expect(lost, `pause lost in ${lost.length} of ${ROUNDS} rounds`).toEqual([])
  })

  it('an upsert racing a scheduler advancing the tick never moves the tick back', async () => {
    const a = durable.queue()
    const b = durable.peer!(a)
    await Promise.all([a.ready(), b.ready()])
    const store = b[internals].store()!
    const backwards: number[] = []
    for (let round = 0; round < ROUNDS; round++) {
      const id = `tick-${round}`
      const first = await a.schedules.upsert({ id, cron: '* * * * *', task: report, input: { n: 0 } })
      const from = first.nextRunAt!.getTime()
      const [, moved] = await Promise.all([
        a.schedules.upsert({ id, cron: '* * * * *', task: report, input: { n: round } }),
        store.advanceSchedule(id, from, from + 60_000, from),
      ])
      const row = await a.schedules.get(id)
      expect(row?.input).toEqual({ n: round })
      if (moved && row?.nextRunAt?.getTime() !== from + 60_000) backwards.push(round)
    }
    expect(backwards, `tick moved back in ${backwards.length} of ${ROUNDS} rounds`).toEqual([])
  })

  it('a resume racing a cron change fires on the new expression', async () => {
    const a = durable.queue()
    const b = durable.peer!(a)
    await Promise.all([a.ready(), b.ready()])
    const stale: number[] = []
    for (let round = 0; round < 30; round++) {
      const id = `resume-${round}`
      await a.schedules.upsert({ id, cron: '* * * * *', task: report, input: { n: 0 } })
      await a.schedules.pause(id)
      // Yearly on Jan 1st: its next tick can never be the next minute's.
      await Promise.all([
        a.schedules.upsert({ id, cron: '0 0 1 1 *', task: report, input: { n: 0 } }),
        b.schedules.resume(id),
      ])
      const row = await a.schedules.get(id)
      expect(row).toMatchObject({ paused: false, cron: '0 0 1 1 *' })
      const next = row!.nextRunAt!
      if (next.getUTCMonth() !== 0 || next.getUTCDate() !== 1 || next.getUTCHours() !== 0) stale.push(round)
    }
    expect(stale, `resumed on the old expression in ${stale.length} rounds`).toEqual([])
  })

  it('an upsert of another tenant’s schedule id is refused and changes nothing', async () => {
    const a = durable.queue()
    await a.schedules.upsert({
      id: 'mine',
      cron: '* * * * *',
      task: report,
      input: { n: 1 },
      tenantId: 'acme',
    })
    await expect(
      a.schedules.upsert({ id: 'mine', cron: '0 * * * *', task: report, input: { n: 2 }, tenantId: 'other' }),
    ).rejects.toMatchObject({ code: 'INVALID_STATE' })
    expect(await a.schedules.get('mine')).toMatchObject({
      cron: '* * * * *',
      input: { n: 1 },
      tenantId: 'acme',
    })
  })
})

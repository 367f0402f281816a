/**
 * Flow control in the metrics: ready and running tasks per group (bounded: groups past the bound
 * share `_other`, their counts added up), paused scopes, rate-limit waits, and tasks a handler gave
 * back rate-limited.
 */
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { defineTask, RateLimitedError } from '../../src/index.js'
import { createMetrics } from '../../src/observability/metrics.js'
import { backends, sleep, trackWorker, until } from '../helpers/backends.js'

const job = defineTask({ name: 'job', input: z.object({ n: z.number() }) })
const line = (text: string, start: string) => text.split('\n').find((l) => l.startsWith(start))

for (const backend of backends.filter((b) => b.label !== 'durable')) {
  describe.skipIf(!backend.available)(`flow metrics (${backend.label})`, () => {
    it('exports ready and running per group within the label bound, pauses and waits', async () => {
      const queue = backend.queue({
        fairness: 'tenant',
        limits: [{ per: 'queue', max: 1, durationMs: 60_000 }],
      })
      const metrics = createMetrics({ maxTenants: 2 })
      metrics.observe(queue)
      for (const tenantId of ['a', 'a', 'b', 'c', 'd']) await queue.submit(job, { n: 1 }, { tenantId })
      await queue.pause({ group: 'b' })
      await queue.pause({ task: 'other' })
      const text = (await metrics.render()).body
      const q = queue.name
      expect(line(text, `task_group_ready_count{queue="${q}",group="a"}`)).toMatch(/ 2$/)
      expect(line(text, `task_group_ready_count{queue="${q}",group="b"}`)).toMatch(/ 1$/)
      // c and d are past the bound of two groups: one series for both.
      expect(line(text, `task_group_ready_count{queue="${q}",group="_other"}`)).toMatch(/ 2$/)
      expect(line(text, `task_flow_paused{queue="${q}",kind="group",name="b"}`)).toMatch(/ 1$/)
      expect(line(text, `task_flow_paused{queue="${q}",kind="task",name="other"}`)).toMatch(/ 1$/)
      expect(line(text, `task_flow_paused{queue="${q}",kind="queue",name=""}`)).toMatch(/ 0$/)
      metrics.registry.clear()
    })

    it('counts tasks given back rate-limited and shows how long their group waits', async () => {
      const queue = backend.queue()
      const metrics = createMetrics()
      metrics.observe(queue)
      const worker = trackWorker({ queue, concurrency: 1 })
      metrics.observeWorker(worker)
      worker.handle(job, () => {
        throw new RateLimitedError({ retryAfterMs: 60_000 })
      })
      await queue.submit(job, { n: 1 }, { tenantId: 'acme' })
      await worker.start()
      await until(async () =>
        line((await metrics.render()).body, 'tasks_rate_limited_total{task_type="job",scope="group"} 1'),
      )
      await worker.close()
      await sleep(300) // past the scrape's reuse of the last counts
      const text = (await metrics.render()).body
      const wait = line(text, `task_flow_wait_seconds{queue="${queue.name}",kind="group",name="acme"}`)
      expect(Number(wait?.split(' ')[1])).toBeGreaterThan(50)
      metrics.registry.clear()
    })
  })
}

/**
 * Many `queue.waitFor` calls at once share one subscription; each listens on its close signal, and
 * that must not look like a leak to Node (no MaxListenersExceededWarning past 10 waiters).
 */
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { defineTask } from '../../src/index.js'
import { backends, trackWorker } from '../helpers/backends.js'

const echo = defineTask({ name: 'echo', input: z.object({ n: z.number() }), output: z.number() })

for (const backend of backends) {
  describe.skipIf(!backend.available)(`many waiters (${backend.label})`, () => {
    it('waits for 50 tasks at once without a MaxListenersExceededWarning', async () => {
      const warnings: string[] = []
      const onWarning = (w: Error) => warnings.push(w.name)
      process.on('warning', onWarning)
      try {
        const queue = backend.queue()
        const ids = await Promise.all(Array.from({ length: 50 }, (_, n) => queue.submit(echo, { n })))
        const waits = ids.map(({ id }) => queue.waitFor(id, { timeoutMs: 30_000 }))
        const worker = trackWorker({ queue, concurrency: 10, pollIntervalMs: 20 })
        worker.handle(echo, ({ n }) => n)
        await worker.start()
        const done = await Promise.all(waits)
        await worker.close()
        expect(done.map((t) => t.result)).toEqual(Array.from({ length: 50 }, (_, n) => n))
        await new Promise((resolve) => setImmediate(resolve))
        expect(warnings.filter((name) => name === 'MaxListenersExceededWarning')).toEqual([])
      } finally {
        process.off('warning', onWarning)
      }
    }, 60_000)
  })
}

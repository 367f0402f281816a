import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { defineTask, TaskloomError } from '../../src/index.js'
import { internals } from '../../src/queue/internal.js'
import { waitForTask } from '../../src/testing.js'
import { backends, sleep, trackWorker } from '../helpers/backends.js'

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise
  } catch (err) {
    if (err instanceof TaskloomError) return err.code
    throw err
  }
  return undefined
}

for (const backend of backends) {
  describe.skipIf(!backend.available)(`distributed locks (${backend.label})`, () => {
    it('excludes a second holder across two queue handles, and tokens grow', async () => {
      const a = backend.queue()
      const b = backend.peer(a)
      const first = await a.lock('invoice:1', { ttlMs: 5000 })
      expect(first.key).toBe('invoice:1')
      expect(await codeOf(b.lock('invoice:1', { ttlMs: 5000 }))).toBe('LOCK_BUSY')
      await first.release()
      const second = await b.lock('invoice:1', { ttlMs: 5000 })
      expect(second.fencingToken).toBeGreaterThan(first.fencingToken)
      await second.release()
    })

    it('waits up to waitMs for a busy lock', async () => {
      const a = backend.queue()
      const b = backend.peer(a)
      const held = await a.lock('k', { ttlMs: 5000 })
      setTimeout(() => void held.release(), 150)
      const started = Date.now()
      const got = await b.lock('k', { ttlMs: 5000, waitMs: 3000, retryMs: 20 })
      expect(Date.now() - started).toBeGreaterThanOrEqual(100)
      expect(got.fencingToken).toBeGreaterThan(held.fencingToken)
      await got.release()
      const busy = await a.lock('k2', { ttlMs: 5000 })
      const t = Date.now()
      expect(await codeOf(b.lock('k2', { waitMs: 200, retryMs: 20 }))).toBe('LOCK_BUSY')
      expect(Date.now() - t).toBeGreaterThanOrEqual(190)
      await busy.release()
    })

    it('expires: a lapsed hold is taken over, and extend/release of it fail with LOCK_LOST (HTTP 409)', async () => {
      const a = backend.queue()
      const b = backend.peer(a)
      const old = await a.lock('k', { ttlMs: 100 })
      await sleep(150)
      const taken = await b.lock('k', { ttlMs: 5000 })
      expect(taken.fencingToken).toBeGreaterThan(old.fencingToken)
      const lost = await old.extend(1000).catch((e: unknown) => e)
      expect(lost).toBeInstanceOf(TaskloomError)
      expect((lost as TaskloomError).code).toBe('LOCK_LOST')
      expect((lost as TaskloomError).httpStatus).toBe(409)
      expect(await codeOf(old.release())).toBe('LOCK_LOST')
      // The new holder is untouched by the old one's attempts.
      expect(await codeOf(a.lock('k'))).toBe('LOCK_BUSY')
      await taken.extend(5000)
      await taken.release()
      expect(await codeOf(taken.release())).toBe('LOCK_LOST')
    })

    it('issues strictly increasing fencing tokens under contention', async () => {
      const a = backend.queue()
      const b = backend.peer(a)
      const tokens: number[] = []
      let inside = 0
      let overlap = false
      await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          (i % 2 ? a : b).withLock(
            'counter',
            async (lock) => {
              inside += 1
              if (inside > 1) overlap = true
              tokens.push(lock.fencingToken)
              await sleep(2)
              inside -= 1
            },
            { ttlMs: 5000, waitMs: 20_000, retryMs: 5 },
          ),
        ),
      )
      expect(overlap).toBe(false)
      expect(tokens).toHaveLength(20)
      for (let i = 1; i < tokens.length; i++) expect(tokens[i]!).toBeGreaterThan(tokens[i - 1]!)
    })

    it('withLock releases on success and on a throw', async () => {
      const q = backend.queue()
      expect(await q.withLock('w', () => 42)).toBe(42)
      await expect(
        q.withLock('w', () => {
          throw new Error('inside')
        }),
      ).rejects.toThrow('inside')
      const again = await q.lock('w')
      await again.release()
    })

    it('withLock renews the lock while fn runs past ttlMs, and its signal stays quiet', async () => {
      const q = backend.queue()
      const peer = backend.peer(q)
      let signal: AbortSignal | undefined
      const busy: (string | undefined)[] = []
      const result = await q.withLock(
        'long',
        async (_lock, s) => {
          signal = s
          // Five TTLs long: without renewals the peer would take the key after the first.
          for (let i = 0; i < 10; i++) {
            await sleep(100)
            busy.push(await codeOf(peer.lock('long', { ttlMs: 5000 })))
          }
          return 'done'
        },
        { ttlMs: 200 },
      )
      expect(result).toBe('done')
      expect(busy).toEqual(Array(10).fill('LOCK_BUSY'))
      expect(signal?.aborted).toBe(false)
      const after = await peer.lock('long')
      await after.release()
    })

    it('withLock aborts fn when the lock is lost, and rejects with LOCK_LOST', async () => {
      const q = backend.queue()
      const peer = backend.peer(q)
      const broker = q[internals].broker
      // A renewal refused: the key was released behind the holder's back.
      const refused = q.withLock(
        'gone',
        async (lock, signal) => {
          await broker.releaseLock('gone', lock.fencingToken, Date.now())
          await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }))
          expect((signal.reason as TaskloomError).code).toBe('LOCK_LOST')
          return 'finished anyway'
        },
        { ttlMs: 150 },
      )
      expect(await codeOf(refused)).toBe('LOCK_LOST')
      // An event loop blocked past the TTL: no renewal could be sent, the key lapsed and a peer took it.
      let abortedWhileHeldElsewhere = false
      const blocked = q.withLock(
        'blocked',
        async (_lock, signal) => {
          const until = Date.now() + 300
          while (Date.now() < until) {} // blocks renewals for two TTLs
          const other = await peer.lock('blocked', { ttlMs: 5000 })
          await sleep(0)
          abortedWhileHeldElsewhere = signal.aborted
          await other.release()
        },
        { ttlMs: 120 },
      )
      expect(await codeOf(blocked)).toBe('LOCK_LOST')
      expect(abortedWhileHeldElsewhere).toBe(true)
      // renew: false keeps the old behaviour (the lock lapses at ttlMs), with the signal on top.
      const unrenewed = q.withLock('short', (_lock, signal) => sleep(300).then(() => signal.aborted), {
        ttlMs: 100,
        renew: false,
      })
      expect(await codeOf(unrenewed)).toBe('LOCK_LOST')
      expect(await codeOf(q.withLock('short', () => 1, { renew: 'yes' as never }))).toBe('INVALID_OPTIONS')
    })

    it('rejects bad keys and options', async () => {
      const q = backend.queue()
      expect(await codeOf(q.lock(''))).toBe('INVALID_OPTIONS')
      expect(await codeOf(q.lock('k', { ttlMs: 0 }))).toBe('INVALID_OPTIONS')
      expect(await codeOf(q.lock('k', { waitMs: -1 }))).toBe('INVALID_OPTIONS')
      expect(await codeOf(q.lock('k', { ttlMs: 1.5 }))).toBe('INVALID_OPTIONS')
    })

    it('lockKey: tasks sharing a key never overlap across workers, and waiting spends no retry', async () => {
      const q = backend.queue()
      const peer = backend.peer(q)
      const job = defineTask({ name: 'per-customer', input: z.object({ c: z.string(), n: z.number() }) })
      const running = new Map<string, number>()
      let overlap = false
      const attempts: number[] = []
      const handler = async (input: { c: string; n: number }, ctx: { attempt: number }) => {
        const now = (running.get(input.c) ?? 0) + 1
        running.set(input.c, now)
        if (now > 1) overlap = true
        attempts.push(ctx.attempt)
        await sleep(15)
        running.set(input.c, running.get(input.c)! - 1)
        return input.n
      }
      const w1 = trackWorker({ queue: q, concurrency: 10 }).handle(job, handler)
      const w2 = trackWorker({ queue: peer, concurrency: 10 }).handle(job, handler)
      const submitted = await q.submitMany(
        Array.from({ length: 24 }, (_, n) => ({
          task: job,
          input: { c: `c${n % 3}`, n },
          options: { lockKey: `customer:c${n % 3}`, maxRetries: 0 },
        })),
      )
      await Promise.all([w1.start(), w2.start()])
      for (const s of submitted) {
        const done = await waitForTask(q, s.id, { timeoutMs: 20_000 })
        expect(done.status).toBe('completed')
      }
      expect(overlap).toBe(false)
      expect(attempts.every((a) => a === 1)).toBe(true) // waiting for the key never cost an attempt
      expect(await q.get(submitted[0]!.id)).toMatchObject({ attempts: 1, lockKey: 'customer:c0' })
      await Promise.all([w1.close(), w2.close()])
    })

    it('rejects a bad lockKey at submit', async () => {
      const q = backend.queue()
      const job = defineTask({ name: 'j', input: z.object({}) })
      expect(await codeOf(q.submit(job, {}, { lockKey: '' }))).toBe('INVALID_OPTIONS')
      expect(await codeOf(q.submit(job, {}, { lockKey: 'x'.repeat(256) }))).toBe('INVALID_OPTIONS')
    })
  })
}

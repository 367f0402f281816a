import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import pg from 'pg'
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { MemoryBroker } from '../../src/broker/memory/memory-broker.js'
import { createQueue, defineTask, NonRetryableError } from '../../src/index.js'
import { createCodec } from '../../src/queue/codec.js'
import { waitForTask } from '../../src/testing.js'
import { backends, silent, TEST_SCHEMA, trackWorker, until } from '../helpers/backends.js'
import { DATABASE_URL, REDIS_URL, uniqueName } from '../helpers/services.js'

const note = defineTask({ name: 'note', input: z.object({ text: z.string() }) })
const other = defineTask({ name: 'other', input: z.object({ text: z.string() }) })
const durable = backends.find((b) => b.label === 'durable')!
const key = (byte: number) => Buffer.alloc(32, byte)

describe('encryption codec', () => {
  it('round-trips values and never shows the plaintext', () => {
    const codec = createCodec('q', { keys: { k1: key(1) }, primaryKeyId: 'k1' })
    const text = codec.encode({ secret: 'hunter2' }, 'note')
    expect(text).not.toContain('hunter2')
    expect(JSON.parse(text)).toMatchObject({ $tl: 'enc1', kid: 'k1' })
    expect(codec.decode(text)).toEqual({ secret: 'hunter2' })
  })

  it('rotates keys: old data stays readable with the old key kept in the ring', () => {
    const old = createCodec('q', { keys: { k1: key(1) }, primaryKeyId: 'k1' })
    const sealed = old.encode('v1 data', 'note')
    const rotated = createCodec('q', {
      keys: { k1: key(1), k2: key(2).toString('base64') },
      primaryKeyId: 'k2',
    })
    expect(rotated.decode(sealed)).toBe('v1 data')
    expect(JSON.parse(rotated.encode('v2 data', 'note')).kid).toBe('k2')
    const withoutOld = createCodec('q', { keys: { k2: key(2) }, primaryKeyId: 'k2' })
    expect(() => withoutOld.decode(sealed)).toThrow(/no key k1/)
  })

  it('refuses tampered data, data of another queue, and bad keys', () => {
    const codec = createCodec('q', { keys: { k1: key(1) }, primaryKeyId: 'k1' })
    const envelope = JSON.parse(codec.encode('x', 'note'))
    envelope.ct = Buffer.from('tampered').toString('base64')
    expect(() => codec.decode(JSON.stringify(envelope))).toThrow(/could not decrypt/)
    const elsewhere = createCodec('other-queue', { keys: { k1: key(1) }, primaryKeyId: 'k1' })
    expect(() => elsewhere.decode(codec.encode('x', 'note'))).toThrow(/could not decrypt/)
    expect(() => createCodec('q', { keys: { k1: Buffer.alloc(16) }, primaryKeyId: 'k1' })).toThrow(/32 bytes/)
    expect(() => createCodec('q', { keys: { k1: key(1) }, primaryKeyId: 'k9' })).toThrow(
      /not in encryption.keys/,
    )
  })

  it('encrypts only the task names it is given', () => {
    const codec = createCodec('q', { keys: { k1: key(1) }, primaryKeyId: 'k1', tasks: ['note'] })
    expect(codec.encode('x', 'other')).toBe('"x"')
    expect(codec.encode('x', 'note')).not.toBe('"x"')
  })
})

describe.skipIf(!durable.available)('durable mode', () => {
  it('keeps inputs and results encrypted in Redis and PostgreSQL, and plain for the handler', async () => {
    const queue = durable.queue({ encryption: { keys: { k1: randomBytes(32) }, primaryKeyId: 'k1' } })
    const seen: string[] = []
    const worker = trackWorker({ queue }).handle(note, ({ text }) => {
      seen.push(text)
      return { echoed: text }
    })
    await worker.start()
    const { id } = await queue.submit(note, { text: 'top secret' })
    const done = await waitForTask(queue, id)
    await worker.close()
    expect(seen).toEqual(['top secret'])
    expect(done).toMatchObject({ input: { text: 'top secret' }, result: { echoed: 'top secret' } })

    const redis = new Redis(REDIS_URL)
    const hash = await redis.hgetall(`tl:{${queue.name}}:task:${id}`)
    await redis.quit()
    expect(JSON.stringify(hash)).not.toContain('top secret')
    await queue.close() // flushes the change feed: the result is in the store now
    const client = new pg.Client(DATABASE_URL)
    await client.connect()
    const { rows } = await client.query(
      `select payload::text as payload, result::text as result from "${TEST_SCHEMA}".tasks where id = $1`,
      [id],
    )
    await client.end()
    expect(rows[0].payload).toContain('enc1')
    expect(rows[0].result).toContain('enc1')
    expect(JSON.stringify(rows[0])).not.toContain('top secret')
  })

  it('lists tasks from the store with filters, paging and live status', async () => {
    const queue = durable.queue()
    for (let i = 0; i < 5; i++) await queue.submit(note, { text: `a${i}` }, { tenantId: 'acme' })
    await queue.submit(other, { text: 'b' }, { tenantId: 'globex' })
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    const worker = trackWorker({ queue, concurrency: 1 })
      .handle(note, async () => gate)
      .handle(other, () => 1)
    await worker.start()
    await until(async () => (await queue.list({ status: 'processing' })).total === 1)
    const running = await queue.list({ status: ['processing'] })
    expect(running.tasks[0]?.status).toBe('processing')

    const page1 = await queue.list({ tenantId: 'acme', limit: 2 })
    expect(page1.total).toBe(5)
    expect(page1.tasks).toHaveLength(2)
    const page2 = await queue.list({ tenantId: 'acme', limit: 2, cursor: page1.nextCursor! })
    expect(page2.tasks.map((t) => t.id)).not.toContain(page1.tasks[0]!.id)
    expect((await queue.list({ name: 'other' })).tasks.map((t) => t.tenantId)).toEqual(['globex'])
    await expect(queue.list({ status: 'bogus' as never })).rejects.toMatchObject({ code: 'INVALID_OPTIONS' })

    release()
    await until(async () => (await queue.list({ status: 'completed' })).total === 6, 10_000)
    await worker.close()
    const [first] = (await queue.list({ name: 'other' })).tasks
    expect(await queue.result(first!.id)).toEqual({
      id: first!.id,
      status: 'completed',
      result: 1,
      error: null,
    })
    expect(await queue.result('00000000-0000-0000-0000-000000000000')).toBeNull()
  })

  it('shows a cancel and a DLQ retry in the store by the time the call returns', async () => {
    const queue = durable.queue()
    // A second process on the queue: its change feed reader, blocked waiting, often gets the
    // cancel's feed entry first; the call must not depend on who reads the feed.
    const peer = durable.peer(queue)
    await peer.ready()
    const later = await queue.submit(note, { text: 'later' }, { delayMs: 60_000 })
    await queue.cancel(later.id)
    // The status filter runs in SQL, on the stored status: no live state can stand in for it.
    expect((await queue.list({ status: 'cancelled' })).tasks.map((t) => t.id)).toEqual([later.id])

    const doomed = await queue.submit(other, { text: 'doomed' })
    const alsoDoomed = await queue.submit(other, { text: 'also doomed' })
    const worker = trackWorker({ queue }).handle(other, () => {
      throw new NonRetryableError('no')
    })
    await worker.start()
    await until(async () => (await queue.list({ status: 'failed' })).total === 2)
    await worker.close()
    await queue.dlq.retry(doomed.id)
    expect((await queue.list({ status: 'failed' })).tasks.map((t) => t.id)).toEqual([alsoDoomed.id])
    expect((await queue.list({ status: 'queued' })).tasks.map((t) => t.id)).toEqual([doomed.id])
    expect(await queue.dlq.retryAll()).toBe(1)
    expect((await queue.list({ status: 'failed' })).total).toBe(0)
    expect((await queue.list({ status: 'queued' })).total).toBe(2)
  })

  it('refuses text PostgreSQL cannot store as bad input, failing only that caller, and a key that is not Unicode', async () => {
    const queue = durable.queue()
    const lone = 'a\uD800b'
    const [bad, good] = await Promise.allSettled([
      queue.submit(note, { text: lone }),
      queue.submit(note, { text: 'fine' }),
    ])
    expect(bad).toMatchObject({ status: 'rejected', reason: { code: 'INVALID_INPUT', retryable: false } })
    expect(good.status).toBe('fulfilled')
    await expect(queue.submit(note, { text: 'x' }, { idempotencyKey: lone })).rejects.toMatchObject({
      code: 'INVALID_OPTIONS',
    })
    await expect(queue.submit(note, { text: 'x' }, { lockKey: '\uDC00' })).rejects.toMatchObject({
      code: 'INVALID_OPTIONS',
    })
  })

  it('lets the store judge idempotency keys', async () => {
    const queue = durable.queue()
    const a = await queue.submit(note, { text: 'x' }, { idempotencyKey: 'once' })
    const b = await queue.submit(note, { text: 'x' }, { idempotencyKey: 'once' })
    expect(b).toMatchObject({ id: a.id, deduplicated: true })
    expect((await queue.counts()).ready.normal).toBe(1)
    // The live record (from Redis) still shows the key the task was submitted with.
    expect((await queue.get(a.id))?.idempotencyKey).toBe('once')
  })

  it('refuses to start a worker when the store cannot be reached, naming the problem', async () => {
    const queue = createQueue({
      name: uniqueName(),
      postgres: 'postgres://127.0.0.1:1/nowhere',
      postgresPool: { max: 2, connectionTimeoutMs: 2000 },
      logger: silent,
    })
    const worker = trackWorker({ queue })
    await expect(worker.start()).rejects.toThrow(/ECONNREFUSED|connect/)
    await queue.close()
  })

  it('lets one process at a time open a queue on the in-process broker with a shared PostgreSQL', async () => {
    const name = uniqueName()
    const open = () =>
      createQueue({
        name,
        postgres: DATABASE_URL,
        postgresSchema: TEST_SCHEMA,
        migrate: true,
        logger: silent,
      })
    const first = open()
    await first.ready()
    // A second process would restore the same rows into its own memory and run them twice.
    const second = open()
    await expect(second.ready()).rejects.toMatchObject({ code: 'QUEUE_IN_USE' })
    await second.close()
    await first.close()
    const third = open()
    await third.ready()
    await third.close()
  })

  it('rejects bad pool settings', () => {
    expect(() => createQueue({ name: uniqueName(), postgresPool: { max: 0 } })).toThrow(/postgresPool\.max/)
  })
})

describe('embedded mode (in-process broker + PGlite)', () => {
  it('records tasks in PGlite by default, with nothing else to run', async () => {
    const queue = createQueue({ name: uniqueName(), logger: silent })
    await queue.ready()
    const worker = trackWorker({ queue }).handle(note, ({ text }) => text.toUpperCase())
    await worker.start()
    const { id } = await queue.submit(note, { text: 'hi' })
    expect((await waitForTask(queue, id)).result).toBe('HI')
    await worker.close()
    await until(async () => (await queue.list({ status: 'completed' })).total === 1)
    await queue.close()
  }, 60_000)

  it('keeps unfinished tasks across a restart when given a data directory', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'taskloom-pglite-'))
    try {
      const name = uniqueName()
      const first = createQueue({ name, postgres: { dataDir }, logger: silent })
      const { id } = await first.submit(note, { text: 'survive' })
      await first.close()

      const second = createQueue({ name, postgres: { dataDir }, logger: silent })
      await second.ready() // a fresh in-process broker: recovery restores the task from PGlite
      const worker = trackWorker({ queue: second }).handle(note, ({ text }) => text)
      await worker.start()
      expect((await waitForTask(second, id)).result).toBe('survive')
      await worker.close()
      await second.close()
    } finally {
      rmSync(dataDir, { recursive: true, force: true })
    }
  }, 60_000)

  it('acknowledges a stored task even when the broker hand-off fails, and reconciliation enqueues it', async () => {
    const broker = new MemoryBroker(uniqueName(), { changeFeed: true })
    const realEnqueue = broker.enqueue.bind(broker)
    let failures = 1
    broker.enqueue = async (tasks, now) => {
      if (failures-- > 0) throw new Error('broker hiccup')
      return realEnqueue(tasks, now)
    }
    const queue = createQueue({
      name: broker.queueName,
      broker,
      postgres: {},
      logger: silent,
      recovery: { reconcileGraceMs: 50, reconcileIntervalMs: 100 },
    })
    const { id } = await queue.submit(note, { text: 'late' })
    const worker = trackWorker({ queue }).handle(note, ({ text }) => text)
    await worker.start()
    expect((await waitForTask(queue, id, { timeoutMs: 10_000 })).result).toBe('late')
    await worker.close()
    await queue.close()
  }, 60_000)

  it('confirms delivered tasks by reconciliation once, without handing them to the broker twice', async () => {
    const broker = new MemoryBroker(uniqueName(), { changeFeed: true })
    const realEnqueue = broker.enqueue.bind(broker)
    const handed: string[][] = []
    broker.enqueue = async (tasks, now) => {
      handed.push(tasks.map((t) => t.id))
      return realEnqueue(tasks, now)
    }
    const queue = createQueue({
      name: broker.queueName,
      broker,
      postgres: {},
      logger: silent,
      recovery: { reconcileGraceMs: 50, reconcileIntervalMs: 100 },
    })
    const ids = (await queue.submitMany([1, 2, 3].map((n) => ({ task: note, input: { text: `${n}` } })))).map(
      (r) => r.id,
    )
    // No worker yet, so no change confirms the hand-off: reconciliation offers the rows once more...
    await until(() => handed.length >= 2, 10_000)
    expect(handed[1]!.sort()).toEqual([...ids].sort())
    // ...the broker answers that it holds them, and they are marked: no third offer, no duplicates.
    await new Promise((resolve) => setTimeout(resolve, 600))
    expect(handed).toHaveLength(2)
    const counts = await queue.counts()
    expect(Object.values(counts.ready).reduce((a, b) => a + b, 0)).toBe(3)
    const runs: string[] = []
    const worker = trackWorker({ queue }).handle(note, ({ text }) => void runs.push(text))
    await worker.start()
    for (const id of ids) await waitForTask(queue, id)
    await worker.close()
    expect(runs.sort()).toEqual(['1', '2', '3'])
    await queue.close()
  }, 60_000)
})

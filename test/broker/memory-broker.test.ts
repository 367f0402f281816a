import { describe, expect, it } from 'vitest'
import type { NewTask } from '../../src/broker/broker.js'
import { DeadLetters } from '../../src/broker/memory/dead-letters.js'
import { Deque } from '../../src/broker/memory/deque.js'
import { MemoryBroker } from '../../src/broker/memory/memory-broker.js'
import { Timeline } from '../../src/broker/memory/timeline.js'
import { TaskloomError } from '../../src/errors.js'
import { uniqueName } from '../helpers/services.js'
import { changeFeedConformance } from './change-feed.js'
import { brokerConformance } from './conformance.js'
import { dependencyConformance } from './dependencies.js'
import { flowConformance } from './flow-conformance.js'

brokerConformance('MemoryBroker', (name) => new MemoryBroker(name))
dependencyConformance('MemoryBroker', (name) => new MemoryBroker(name))
flowConformance('MemoryBroker', (name, flow) => new MemoryBroker(name, { flow }))

const t0 = 1_000_000
const DAY = 24 * 60 * 60 * 1000

function newTask(id: string, overrides: Partial<NewTask> = {}): NewTask {
  return {
    id,
    name: 'job',
    tenantId: 'tenant-a',
    payload: '{}',
    priority: 'normal',
    runAt: t0,
    timeoutMs: 1000,
    maxRetries: 0,
    createdAt: t0,
    idempotencyTtlMs: DAY,
    ...overrides,
  }
}

describe('MemoryBroker retention', () => {
  it('purges a completed record retentionMs after it finished', async () => {
    const broker = new MemoryBroker(uniqueName(), { retentionMs: 1000 })
    await broker.enqueue([newTask('a')], t0)
    const [claimed] = (await broker.claim('w', 1, 1000, t0)).tasks
    await broker.complete([{ id: 'a', token: claimed!.token, result: '1' }], t0 + 10)
    await broker.counts()
    expect(await broker.get('a')).not.toBeNull()
    await broker.claim('w', 1, 1000, t0 + 1009)
    expect(await broker.get('a')).not.toBeNull()
    await broker.claim('w', 1, 1000, t0 + 1010)
    expect(await broker.get('a')).toBeNull()
  })

  it('purges a cancelled record, and claim still skips its tombstone', async () => {
    const broker = new MemoryBroker(uniqueName(), { retentionMs: 1000 })
    await broker.enqueue([newTask('a'), newTask('b')], t0)
    await broker.cancel('a', t0)
    await broker.enqueue([newTask('c')], t0 + 5000)
    expect(await broker.get('a')).toBeNull()
    expect((await broker.claim('w', 10, 1000, t0 + 5000)).tasks.map((t) => t.id)).toEqual(['b', 'c'])
  })

  it('keeps dead-lettered records until they are retried', async () => {
    const broker = new MemoryBroker(uniqueName(), { retentionMs: 1000 })
    await broker.enqueue([newTask('a')], t0)
    await broker.claim('w', 1, 1000, t0)
    await broker.claim('w', 1, 1000, t0 + 1000)
    await broker.claim('w', 1, 1000, t0 + 10 * DAY)
    expect((await broker.get('a'))?.status).toBe('failed')
    expect(await broker.retryDead(['a'], t0 + 10 * DAY)).toBe(1)
  })

  it('frees an idempotency key once the record holding it was purged', async () => {
    const broker = new MemoryBroker(uniqueName(), { retentionMs: 1000 })
    await broker.enqueue([newTask('a', { idempotencyKey: 'k' })], t0)
    await broker.cancel('a', t0)
    expect((await broker.enqueue([newTask('b', { idempotencyKey: 'k' })], t0 + 999))[0]).toMatchObject({
      id: 'a',
      deduplicated: true,
    })
    expect((await broker.enqueue([newTask('c', { idempotencyKey: 'k' })], t0 + 1000))[0]).toMatchObject({
      id: 'c',
      deduplicated: false,
    })
  })

  it('keeps records for 24 hours by default', async () => {
    const broker = new MemoryBroker(uniqueName())
    await broker.enqueue([newTask('a')], t0)
    await broker.cancel('a', t0)
    await broker.counts()
    await broker.enqueue([], t0 + DAY - 1)
    expect(await broker.get('a')).not.toBeNull()
    await broker.enqueue([], t0 + DAY)
    expect(await broker.get('a')).toBeNull()
  })
})

describe('MemoryBroker close', () => {
  it('wakes parked waiters', async () => {
    const broker = new MemoryBroker(uniqueName())
    const abort = new AbortController()
    const waiting = broker.waitForWork(60_000, abort.signal)
    await broker.close()
    await waiting
  })

  it('rejects later calls with CLOSED, but waitForWork still resolves', async () => {
    const broker = new MemoryBroker(uniqueName())
    await broker.close()
    await expect(broker.enqueue([newTask('a')], t0)).rejects.toBeInstanceOf(TaskloomError)
    await expect(broker.claim('w', 1, 1000, t0)).rejects.toMatchObject({ code: 'CLOSED' })
    await expect(broker.get('a')).rejects.toMatchObject({ code: 'CLOSED' })
    await broker.waitForWork(60_000, new AbortController().signal)
    await broker.close()
  })
})

describe('Deque', () => {
  it('pushes at both ends and pops from the front across growth and wrap-around', () => {
    const deque = new Deque<number>()
    const model: number[] = []
    let next = 0
    for (let round = 0; round < 2000; round++) {
      const op = (round * 7919) % 5
      if (op < 2) {
        deque.pushBack(next)
        model.push(next++)
      } else if (op < 3) {
        deque.pushFront(next)
        model.unshift(next++)
      } else {
        expect(deque.popFront()).toBe(model.shift())
      }
      expect(deque.length).toBe(model.length)
    }
    while (model.length > 0) expect(deque.popFront()).toBe(model.shift())
    expect(deque.popFront()).toBeUndefined()
  })

  it('drains a large queue in order', () => {
    const deque = new Deque<number>()
    for (let i = 0; i < 100_000; i++) deque.pushBack(i)
    const out: (number | undefined)[] = []
    for (let i = 0; i < 100_000; i++) out.push(deque.popFront())
    expect(out).toEqual(Array.from({ length: 100_000 }, (_, i) => i))
    expect(deque.length).toBe(0)
  })
})

describe('Timeline', () => {
  it('pops due entries earliest first, ties in insertion order, skipping removed ones', () => {
    const timeline = new Timeline<string>()
    timeline.add(30, 'c')
    const removed = timeline.add(10, 'x')
    timeline.add(20, 'b1')
    timeline.add(20, 'b2')
    timeline.add(5, 'a')
    timeline.remove(removed)
    expect(timeline.size).toBe(4)
    expect(timeline.peek()?.value).toBe('a')
    expect(timeline.popAllDue(20)).toEqual(['a', 'b1', 'b2'])
    expect(timeline.popDue(29)).toBeUndefined()
    expect(timeline.popAllDue(100)).toEqual(['c'])
    expect(timeline.size).toBe(0)
  })

  it('stays ordered through compaction after many removals', () => {
    const timeline = new Timeline<number>()
    const entries = Array.from({ length: 5000 }, (_, i) => timeline.add((i * 7919) % 5000, i))
    for (const entry of entries) if (entry.value % 3 !== 0) timeline.remove(entry)
    const out = timeline.popAllDue(Number.POSITIVE_INFINITY)
    expect(out).toHaveLength(entries.filter((e) => e.value % 3 === 0).length)
    const times = out.map((i) => (i * 7919) % 5000)
    expect(times).toEqual([...times].sort((a, b) => a - b))
  })
})

describe('DeadLetters', () => {
  it('orders by time of death even when deaths arrive out of order', () => {
    const dead = new DeadLetters<string>()
    dead.add(10, 'a')
    dead.add(30, 'c')
    dead.add(20, 'b')
    dead.add(30, 'd')
    expect(dead.newestFirst(10, 0)).toEqual(['d', 'c', 'b', 'a'])
    expect(dead.newestFirst(2, 1)).toEqual(['c', 'b'])
    dead.remove(new Set(['c']))
    expect(dead.takeOldest(2)).toEqual(['a', 'b'])
    expect(dead.length).toBe(1)
  })
})

changeFeedConformance('MemoryBroker', (name, options) => new MemoryBroker(name, options))

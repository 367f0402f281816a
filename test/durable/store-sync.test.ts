/**
 * The change feed's applier: changes that trickle in are gathered for `intervalMs` into one store
 * write, a full batch is followed by the next read at once, and `stop()` never waits out a rest.
 */
import { afterEach, describe, expect, it } from 'vitest'
import type { Broker, ChangeBatch } from '../../src/broker/broker.js'
import { StoreSync } from '../../src/durable/store-sync.js'
import type { Store, TaskUpdate } from '../../src/store/store.js'
import { silent } from '../helpers/backends.js'

/** A feed in memory: a read returns what is there, or waits up to `blockMs` for the next push. */
class FakeFeed {
  private entries: { id: string; change: TaskUpdate }[] = []
  private waiting: (() => void) | undefined
  private seq = 0
  acked: string[] = []

  push(taskId: string): void {
    this.seq += 1
    this.entries.push({
      id: `${this.seq}-0`,
      change: { id: taskId, status: 'completed', attempt: 1, at: this.seq },
    })
    this.waiting?.()
  }

  readonly broker = {
    readChanges: async (_consumer: string, max: number, blockMs: number): Promise<ChangeBatch> => {
      if (this.entries.length === 0 && blockMs > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, blockMs)
          this.waiting = () => {
            clearTimeout(timer)
            resolve()
          }
        })
        this.waiting = undefined
      }
      const taken = this.entries.splice(0, max)
      return { ids: taken.map((e) => e.id), changes: taken.map((e) => e.change) }
    },
    ackChanges: async (ids: readonly string[]) => {
      this.acked.push(...ids)
    },
    holdChanges: async () => {},
  } as unknown as Broker
}

function recordingStore() {
  const writes: string[][] = []
  const store = {
    applyUpdates: async (updates: readonly TaskUpdate[]) => {
      writes.push(updates.map((u) => u.id))
      return updates.length
    },
  } as unknown as Store
  return { store, writes }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
let syncs: StoreSync[] = []
afterEach(async () => {
  await Promise.all(syncs.map((s) => s.stop()))
  syncs = []
})

function start(feed: FakeFeed, store: Store, options: ConstructorParameters<typeof StoreSync>[4]) {
  const sync = new StoreSync(feed.broker, store, 'c1', silent, { blockMs: 200, ...options })
  syncs.push(sync)
  sync.start()
  return sync
}

describe('StoreSync', () => {
  it('gathers changes that trickle in for intervalMs into one store write', async () => {
    const feed = new FakeFeed()
    const { store, writes } = recordingStore()
    start(feed, store, { intervalMs: 300 })
    for (let i = 1; i <= 5; i++) {
      feed.push(`t${i}`)
      await sleep(10)
    }
    await sleep(700)
    // The first change goes at once; the four behind it wait out the interval together.
    expect(writes).toEqual([['t1'], ['t2', 't3', 't4', 't5']])
    expect(feed.acked).toHaveLength(5)
  })

  it('reads again at once after a full batch', async () => {
    const feed = new FakeFeed()
    const { store, writes } = recordingStore()
    for (let i = 1; i <= 5; i++) feed.push(`t${i}`)
    const started = Date.now()
    start(feed, store, { batch: 2, intervalMs: 5_000 })
    await sleep(100)
    expect(writes).toEqual([['t1', 't2'], ['t3', 't4'], ['t5']])
    expect(Date.now() - started).toBeLessThan(1_000)
  })

  it('stop() ends a rest at once', async () => {
    const feed = new FakeFeed()
    const { store } = recordingStore()
    const sync = start(feed, store, { intervalMs: 60_000 })
    feed.push('t1')
    await sleep(50)
    const asked = Date.now()
    await sync.stop()
    expect(Date.now() - asked).toBeLessThan(500)
  })
})

import { describe, expect, it } from 'vitest'
import { Batcher } from '../../src/util/batcher.js'

describe('Batcher with timeoutMs', () => {
  it('bounds each item from add(): a queued item past it is dropped, one in flight fails', async () => {
    const flushed: number[][] = []
    const gates: (() => void)[] = []
    const batcher = new Batcher<number, number>(
      async (items) => {
        flushed.push(items)
        await new Promise<void>((resolve) => gates.push(resolve))
        return items.map((n) => n * 10)
      },
      { maxBatch: 1, timeoutMs: () => 40, timeoutError: (ms) => new Error(`late after ${ms}`) },
    )
    const settled = [1, 2].map((n) => batcher.add(n).catch((e: unknown) => (e as Error).message))
    expect(await Promise.all(settled)).toEqual(['late after 40', 'late after 40'])
    for (const open of gates.splice(0)) open()
    await batcher.drain()
    // Only the first was flushed: the second was still queued behind it when its time ran out.
    expect(flushed).toEqual([[1]])
  })

  it('gives each item its own deadline, counted from its add()', async () => {
    const batcher = new Batcher<number, number>(() => new Promise<number[]>(() => {}), {
      maxBatch: 10,
      timeoutMs: () => 60,
      timeoutError: () => new Error('late'),
    })
    const started = Date.now()
    const failedAt = (p: Promise<number>) => p.catch(() => Date.now() - started)
    const first = failedAt(batcher.add(1))
    await new Promise((resolve) => setTimeout(resolve, 40))
    const second = failedAt(batcher.add(2))
    const [a, b] = await Promise.all([first, second])
    expect(a).toBeGreaterThanOrEqual(55)
    expect(b).toBeGreaterThanOrEqual(95)
  })

  it('without a bound answers as before', async () => {
    const batcher = new Batcher<number, number>(async (items) => items.map((n) => n + 1), { maxBatch: 10 })
    expect(await Promise.all([batcher.add(1), batcher.add(2)])).toEqual([2, 3])
  })
})

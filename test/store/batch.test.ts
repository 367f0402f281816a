import { describe, expect, it } from 'vitest'
import { GroupCommit } from '../../src/store/batch.js'

/** A write that records each batch and doubles every number; `fail` makes batches holding it throw. */
function recorder(options: { fail?: number; delayMs?: number } = {}) {
  const batches: number[][] = []
  const write = async (items: number[]) => {
    batches.push(items)
    if (options.delayMs) await new Promise((resolve) => setTimeout(resolve, options.delayMs))
    if (options.fail !== undefined && items.includes(options.fail)) {
      throw Object.assign(new Error('bad item'), { code: '22P02' })
    }
    return items.map((n) => n * 2)
  }
  return { batches, write }
}

describe('GroupCommit', () => {
  it('gives calls made in the same tick one write, each caller its own answers', async () => {
    const { batches, write } = recorder()
    const commit = new GroupCommit({ write })
    const answers = await Promise.all([commit.add([1]), commit.add([2, 3]), commit.add([4])])
    expect(answers).toEqual([[2], [4, 6], [8]])
    expect(batches).toEqual([[1, 2, 3, 4]])
  })

  it('groups the calls that arrive while a write is in flight into the next write', async () => {
    const { batches, write } = recorder({ delayMs: 20 })
    const commit = new GroupCommit({ write })
    const first = commit.add([1])
    await new Promise((resolve) => setTimeout(resolve, 5))
    const later = [commit.add([2]), commit.add([3]), commit.add([4])]
    await Promise.all([first, ...later])
    expect(batches).toEqual([[1], [2, 3, 4]])
  })

  it('splits a call larger than maxItems, and packs whole calls up to maxItems', async () => {
    const { batches, write } = recorder()
    const commit = new GroupCommit({ write, maxItems: 3 })
    const [big, small] = await Promise.all([commit.add([1, 2, 3, 4, 5, 6, 7]), commit.add([8, 9])])
    expect(big).toEqual([2, 4, 6, 8, 10, 12, 14])
    expect(small).toEqual([16, 18])
    expect(batches).toEqual([
      [1, 2, 3],
      [4, 5, 6],
      [7, 8, 9],
    ])
  })

  it('retries a failed shared write call by call when the error is isolable', async () => {
    const { write } = recorder({ fail: 2 })
    const commit = new GroupCommit({ write, isolate: (err) => (err as { code?: string }).code === '22P02' })
    const outcomes = await Promise.allSettled([commit.add([1]), commit.add([2]), commit.add([3])])
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
    expect(outcomes[2]).toEqual({ status: 'fulfilled', value: [6] })
  })

  it('fails every caller in the batch when the error is not isolable', async () => {
    const { batches, write } = recorder({ fail: 2 })
    const commit = new GroupCommit({ write })
    const outcomes = await Promise.allSettled([commit.add([1]), commit.add([2])])
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected'])
    expect(batches).toHaveLength(1)
  })

  it('rejects a write that answers the wrong number of items', async () => {
    const commit = new GroupCommit<number, number>({ write: async () => [1] })
    await expect(commit.add([1, 2])).rejects.toMatchObject({ code: 'INTERNAL' })
  })

  it('answers an empty call at once', async () => {
    const { batches, write } = recorder()
    expect(await new GroupCommit({ write }).add([])).toEqual([])
    expect(batches).toEqual([])
  })

  it('finishes queued calls on close, then refuses new ones', async () => {
    const { write } = recorder({ delayMs: 10 })
    const commit = new GroupCommit({ write })
    const pending = commit.add([1])
    await commit.close()
    await expect(pending).resolves.toEqual([2])
    await expect(commit.add([2])).rejects.toMatchObject({ code: 'CLOSED' })
  })
})

describe('GroupCommit with timeoutMs', () => {
  it('fails a call past its deadline, and drops items still waiting so they are never written', async () => {
    let release: () => void = () => {}
    const batches: number[][] = []
    const commit = new GroupCommit<number, number>({
      timeoutMs: 50,
      write: async (items) => {
        batches.push(items)
        await new Promise<void>((resolve) => (release = resolve))
        return items
      },
    })
    const inFlight = commit.add([1]).catch((e: unknown) => e)
    await new Promise((resolve) => setTimeout(resolve, 5))
    const waiting = commit.add([2]).catch((e: unknown) => e)
    const [a, b] = await Promise.all([inFlight, waiting])
    expect(a).toMatchObject({ code: 'STORE_UNAVAILABLE', retryable: true })
    expect(b).toMatchObject({ code: 'STORE_UNAVAILABLE', retryable: true })
    release()
    await commit.drain()
    // The write in flight went on (its outcome is unknown to its caller); the waiting item never ran.
    expect(batches).toEqual([[1]])
  })
})
